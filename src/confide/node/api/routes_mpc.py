"""MPC routes: the requester's run on its own node (party 0), the node-to-node link, the release.

Requester side: ``POST /v1/mpc/runs`` runs the joint statistics of a running mpc run with the
partner's and the dealer's nodes and answers the share commitments (the shares stay on the nodes).
``POST /v1/mpc/shares/{run}`` (on each party's node, signed by the task's requester, whatever its
org) hands over that node's share only once its ledger view shows the release approved by every
input owner; otherwise ``409 NOT_RELEASED``. Node to node (signed with the node key):
``POST /v1/mpc/sessions`` asks a node to join as party 1 or dealer; ``GET /v1/mpc/sessions/{s}`` is
its record of the session (status, share digest); ``POST /v1/mpc/sessions/{s}/messages`` carries one
protocol message (raw bytes) into the session's bounded inbox of that peer (429 while it is full).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..mpc import MpcSessions
from .deps import Ctx, Me, Principal, require_roles, wait_for_height

router = APIRouter(prefix="/v1/mpc")
Hex64 = Field(pattern=r"^[0-9a-f]{64}$")
SESSION = r"^[0-9a-f]{16,64}$"


class RunIn(BaseModel):
    run: str = Hex64
    min_height: int = -1
    session: str | None = Field(default=None, pattern=SESSION)


class JoinIn(BaseModel):
    run: str = Hex64
    session: str = Field(pattern=SESSION)
    role: Literal["party", "dealer"]
    rows: int = Field(ge=0, le=2**31 - 1)
    min_height: int = -1


class ShareIn(BaseModel):
    min_height: int = -1


def _sessions(request: Request) -> MpcSessions:
    sessions: MpcSessions = request.app.state.mpc_sessions
    return sessions


@router.post("/runs")
def run_mpc(body: RunIn, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """Run your mpc run with the partner's and the dealer's nodes; the output shares stay on the nodes."""
    wait_for_height(ctx, body.min_height)
    return _sessions(request).run(body.run, me.key_id, body.session)


@router.post("/shares/{run}")
def share(run: str, body: ShareIn, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """This node's output share of your mpc run, once every input owner approved its release."""
    wait_for_height(ctx, body.min_height)
    return _sessions(request).share(run, me.key_id)


@router.post("/results/{run}")
def results(run: str, body: ShareIn, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """Every party's output share of your released run, each encrypted to your recipient key (the
    task's ``params.recipient``): what the web console opens in your browser. This node collects the
    other party's share with its own node key and cannot open either."""
    wait_for_height(ctx, body.min_height)
    return _sessions(request).results(run, me.key_id)


@router.post("/sessions")
def join(
    body: JoinIn, request: Request, ctx: Ctx, me: Principal = Depends(require_roles("node", own_org=False))
) -> dict[str, Any]:
    """(Node to node.) Join an mpc run as party 1 or dealer, after this node's checks."""
    wait_for_height(ctx, body.min_height)
    return _sessions(request).join(body.run, body.session, body.role, body.rows, me.key_id)


@router.get("/sessions/{session}")
def status(
    session: str, request: Request, me: Principal = Depends(require_roles("node", own_org=False))
) -> dict[str, Any]:
    """(Node to node.) This node's record of a session: status and share digest, never the share."""
    return _sessions(request).status(session, me.key_id)


@router.post("/sessions/{session}/messages", status_code=202)
async def message(
    session: str,
    request: Request,
    me: Principal = Depends(require_roles("node", own_org=False)),
) -> Response:
    """(Node to node.) One protocol message (raw bytes) for a session's inbox."""
    body = await request.body()
    await run_in_threadpool(_sessions(request).deliver, session, me.key_id, body)
    return Response(status_code=202)
