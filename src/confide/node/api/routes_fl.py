"""FL routes: the requester's run on its own node (the coordinator), the node-to-node steps, the model.

Requester side (signed by the task's requester): ``POST /v1/fl/runs`` starts coordinating a running
fl run in the background; ``GET /v1/fl/runs/{run}`` is its progress (rounds done, participants,
metrics); ``POST /v1/fl/models/{run}`` hands over the final model only once this node's ledger view
shows its release approved by every participant's owner (else ``409 NOT_RELEASED``). Node to node
(signed with the coordinator's node key): ``POST /v1/fl/steps`` carries one step of a round's
secure aggregation (raw bytes) and answers this node's client message (raw bytes).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..fl import FlSessions
from ..fl.sessions import MAX_STEP_BYTES
from .deps import Ctx, Me, Principal, require_roles, wait_for_height
from .errors import ApiError

router = APIRouter(prefix="/v1/fl")


class RunIn(BaseModel):
    run: str = Field(pattern=r"^[0-9a-f]{64}$")
    min_height: int = -1


class ModelIn(BaseModel):
    min_height: int = -1


def _sessions(request: Request) -> FlSessions:
    sessions: FlSessions = request.app.state.fl_sessions
    return sessions


@router.post("/runs", status_code=202)
def start(body: RunIn, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """Coordinate your running fl run with the participants' nodes (in the background)."""
    wait_for_height(ctx, body.min_height)
    return _sessions(request).start(body.run, me.key_id)


@router.get("/runs/{run}")
def status(run: str, request: Request, me: Me) -> dict[str, Any]:
    """Progress of your fl run on this (coordinating) node."""
    return _sessions(request).status(run, me.key_id)


@router.post("/models/{run}")
def model(run: str, body: ModelIn, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """The final model of your fl run, once every participant's owner approved its release."""
    wait_for_height(ctx, body.min_height)
    return _sessions(request).model(run, me.key_id)


@router.post("/steps")
async def step(request: Request, me: Principal = Depends(require_roles("node", own_org=False))) -> Response:
    """(Node to node.) One step of a round's secure aggregation; the answer is this node's message."""
    body = await request.body()
    if len(body) > MAX_STEP_BYTES:
        raise ApiError(413, "TOO_LARGE", "the step request is larger than any session allows")
    answer = await run_in_threadpool(_sessions(request).step, me.key_id, body)
    return Response(content=answer, media_type="application/octet-stream")
