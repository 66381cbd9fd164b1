"""PSI routes: the requester's run on its own node (the receiver) and the node-to-node link.

Requester side: ``POST /v1/psi/runs`` runs the PSI of a running psi run with the partner's node and
answers the intersection size and digest (the IDs stay on this node); ``GET /v1/psi/runs/{run}``
shows this node's record of it. Node to node (signed with the node key): ``POST /v1/psi/sessions``
asks the partner's node to join as sender; ``POST /v1/psi/sessions/{session}/messages`` carries one
engine message (raw bytes) into the session's bounded inbox (429 while it is full).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..psi import PsiSessions
from .deps import Ctx, Me, Principal, require_roles, wait_for_height

router = APIRouter(prefix="/v1/psi")
Hex64 = Field(pattern=r"^[0-9a-f]{64}$")
SESSION = r"^[0-9a-f]{16,64}$"


class RunIn(BaseModel):
    run: str = Hex64
    min_height: int = -1
    session: str | None = Field(default=None, pattern=SESSION)


class JoinIn(BaseModel):
    run: str = Hex64
    dataset: str = Field(min_length=5, max_length=200)
    session: str = Field(pattern=SESSION)
    min_height: int = -1


def _sessions(request: Request) -> PsiSessions:
    sessions: PsiSessions = request.app.state.psi_sessions
    return sessions


@router.post("/runs")
def run_psi(body: RunIn, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """Run your psi run with the partner's node; the intersection stays on this node."""
    wait_for_height(ctx, body.min_height)
    return _sessions(request).run(body.run, me.key_id, body.session)


@router.get("/runs/{run}")
def psi_run(run: str, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """This node's record of one of your psi runs (status, size, digest; never the IDs)."""
    return _sessions(request).result(run, me.key_id)


@router.post("/sessions")
def join(
    body: JoinIn, request: Request, ctx: Ctx, me: Principal = Depends(require_roles("node", own_org=False))
) -> dict[str, Any]:
    """(Node to node.) Join a psi run as the sender of this org's dataset, after this node's checks."""
    wait_for_height(ctx, body.min_height)
    return _sessions(request).join(body.run, body.dataset, body.session, me.key_id)


@router.post("/sessions/{session}/messages", status_code=202)
async def message(
    session: str,
    request: Request,
    me: Principal = Depends(require_roles("node", own_org=False)),
) -> Response:
    """(Node to node.) One engine message (raw bytes) for a session's inbox."""
    body = await request.body()
    await run_in_threadpool(_sessions(request).deliver, session, me.key_id, body)
    return Response(status_code=202)
