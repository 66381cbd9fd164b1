"""Authentication and authorization as dependencies (one place, no ad-hoc checks in routes)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from ...crypto.httpsig import SignatureRejected, verify_request
from ..context import NodeContext
from .errors import ApiError

__all__ = ["Ctx", "Me", "Principal", "require_roles", "wait_for_height"]

log = logging.getLogger("confide.node.auth")


def get_ctx(request: Request) -> NodeContext:
    ctx: NodeContext = request.app.state.ctx
    if ctx.follower.halted:
        raise ApiError(
            503, "NODE_HALTED", f"ledger verification failed; node fails closed: {ctx.follower.halted}"
        )
    return ctx


Ctx = Annotated[NodeContext, Depends(get_ctx)]


@dataclass(frozen=True)
class Principal:
    key_id: str
    org: str
    roles: tuple[str, ...]
    unit: str | None


async def authenticate(request: Request, ctx: Ctx) -> Principal:
    body = await request.body()
    try:
        signed = verify_request(
            request.headers,
            request.method,
            request.url.path,
            request.url.query,
            body,
            lookup_key=ctx.public_key,
            nonces=ctx.nonces,
        )
    except SignatureRejected as exc:
        log.warning("%s %s: %s", request.method, request.url.path, exc.detail)
        raise ApiError(
            401, "UNAUTHENTICATED", "request signature rejected; sign with an active member key"
        ) from None
    m = ctx.member(signed.key_id)
    if m is None:  # removed between the signature check and now
        raise ApiError(401, "UNAUTHENTICATED", "request signature rejected; sign with an active member key")
    return Principal(signed.key_id, m["org"], tuple(m["roles"]), m.get("unit"))


Me = Annotated[Principal, Depends(authenticate)]


def require_roles(*roles: str, own_org: bool = True) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Dependency: the caller holds one of ``roles`` (and, by default, belongs to this node's org)."""

    async def dep(me: Me, ctx: Ctx) -> Principal:
        if own_org and me.org != ctx.config.org:
            raise ApiError(
                403, "WRONG_ORG", f"this node serves org {ctx.config.org!r}; you belong to {me.org!r}"
            )
        if not set(roles) & set(me.roles):
            raise ApiError(
                403, "WRONG_ROLE", f"needs one of the roles {list(roles)}; you have {list(me.roles)}"
            )
        return me

    return dep


def wait_for_height(ctx: NodeContext, height: int, timeout_s: float = 15.0) -> None:
    """Read your own writes: wait until this node applied block ``height`` (-1: do not wait)."""
    if height > ctx.replica.height and not ctx.follower.wait_for(height, timeout_s):
        raise ApiError(504, "BEHIND", f"this node has not reached height {height} yet; retry")
