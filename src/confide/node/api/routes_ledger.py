"""Ledger routes: status, relaying signed txs, queries over the node's own view, audit."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ...engines.psi.registry import PSI_ENGINES
from ...ledger.audit import audit_trail
from ...ledger.tx import SignedTx, decode_tx
from ..mpc.sessions import MPC_CODE, MPC_LR_CODE
from .deps import Ctx, Me
from .errors import ApiError

router = APIRouter(prefix="/v1")


class TxIn(BaseModel):
    body: str
    sig: str


# The unauthenticated health check reports the state root; anyone may call it, often (peers' checks,
# the scheduler), so it is computed once per head, not per call. /v1/status recomputes it.
_HEALTH_ROOT: dict[int, tuple[str, str]] = {}


@router.get("/health")
def health(ctx: Ctx) -> dict[str, Any]:
    """Unauthenticated liveness: height, head hash and state root (peers compare them), and whether
    the node follows the chain."""
    with ctx.lock:
        height, head = ctx.replica.height, ctx.replica.head_hash
        cached = _HEALTH_ROOT.get(id(ctx))
        if cached is None or cached[0] != head:  # state changes only with the head: recompute then
            cached = _HEALTH_ROOT[id(ctx)] = (head, ctx.replica.state_root())
        root = cached[1]
    return {
        "org": ctx.config.org,
        "height": height,
        "head_hash": head,
        "state_root": root,
        "orderer_error": ctx.follower.last_error,
    }


@router.get("/status")
def status(ctx: Ctx, me: Me) -> dict[str, Any]:
    with ctx.lock:
        root = ctx.replica.state_root()
        height, head = ctx.replica.height, ctx.replica.head_hash
    return {
        "org": ctx.config.org,
        "chain_id": ctx.genesis.chain_id,
        "suite": ctx.genesis.suite,
        "height": height,
        "head_hash": head,
        "state_root": root,
        "orderer_error": ctx.follower.last_error,
    }


@router.get("/engines")
def engines(me: Me) -> dict[str, list[dict[str, str]]]:
    """The psi and mpc programs a task can name, with the ``code_digest`` it puts on the ledger (tee
    tasks carry their own code: ``GET /v1/tee/functions``)."""

    def entry(name: str, code: str) -> dict[str, str]:
        return {"name": name, "code": code, "code_digest": hashlib.sha256(code.encode()).hexdigest()}

    return {
        "psi": [entry(name, code) for name, code in PSI_ENGINES.items()],
        "mpc": [entry("joint-stats", MPC_CODE), entry("ss-lr", MPC_LR_CODE)],
    }


@router.post("/txs")
def relay(tx: TxIn, ctx: Ctx, me: Me) -> dict[str, Any]:
    """Relay a tx the caller signed to the ordering service; answer once this node applied it."""
    try:
        stx = SignedTx.from_json(tx.model_dump())
        signer = decode_tx(stx, ctx.genesis.crypto).signer
    except ValueError as exc:
        raise ApiError(422, "MALFORMED_TX", str(exc)) from None
    if signer != me.key_id:
        raise ApiError(403, "NOT_YOUR_TX", "relay only transactions you signed yourself")
    receipt = ctx.remote.submit(stx)
    ctx.follower.nudge()
    if not ctx.follower.wait_for(receipt.height):
        raise ApiError(504, "NOT_APPLIED", "committed, but this node has not applied the block yet")
    row = ctx.store.find_tx(receipt.tx_id)
    assert row is not None
    return {
        "tx_id": receipt.tx_id,
        "height": row["height"],
        "index": row["idx"],
        "code": row["code"],
        "reason": row["reason"],
        "events": row["events"],
    }


@router.get("/query/{path:path}")
def query(path: str, request: Request, ctx: Ctx, me: Me, min_height: int = -1) -> Any:
    """Read the contract state as this node sees it (catalog, applications, tasks...).

    Query parameters other than ``min_height`` are the query's filters
    (``/v1/query/applications?dataset=...&status=approved``). ``min_height`` waits (up to
    10 s) until this node has applied that block, so a client that just committed
    elsewhere reads its own writes.
    """
    if min_height > ctx.replica.height and not ctx.follower.wait_for(min_height, 10.0):
        raise ApiError(504, "BEHIND", f"this node has not reached height {min_height} yet; retry")
    filters = [(k, v) for k, v in request.query_params.multi_items() if k != "min_height"]
    return ctx.query(path + ("?" + urlencode(filters) if filters else ""))


@router.get("/audit")
def audit(ctx: Ctx, me: Me) -> list[dict[str, Any]]:
    with ctx.lock:
        return audit_trail(ctx.store)
