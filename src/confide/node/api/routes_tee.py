"""TEE routes: the enclave host's sessions and releases, the owner's input stream, provenance.

Host side (the task's requester calls its host node): ``POST /v1/tee/sessions``,
``POST /v1/tee/sessions/{id}/run``, ``POST /v1/tee/releases/{run}``. Owner side (the host node calls
each input owner's node): ``POST /v1/tee/inputs`` streams ``u32 length || frame`` records.
``GET /v1/tee/transfers/{run}`` shows an owner what its node sent; ``GET /v1/tee/provenance/{run}``
re-verifies a result's whole chain on this node. Refusals use the one error shape (``errors.py``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ...engines.tee.functions import FUNCTIONS, task_code
from ..tee.host import EnclaveSessions
from ..tee.owner import open_transfer
from ..tee.provenance import provenance
from .deps import Ctx, Me, Principal, require_roles, wait_for_height

router = APIRouter(prefix="/v1/tee")
Hex64 = Field(pattern=r"^[0-9a-f]{64}$")


class SessionIn(BaseModel):
    task: str = Hex64
    min_height: int = -1


class RunIn(BaseModel):
    run: str = Hex64
    min_height: int = -1


class InputIn(BaseModel):
    run: str = Hex64
    dataset: str = Field(min_length=5, max_length=200)
    min_height: int = -1


class ReleaseIn(BaseModel):
    min_height: int = -1


def _sessions(request: Request) -> EnclaveSessions:
    sessions: EnclaveSessions = request.app.state.tee_sessions
    return sessions


@router.post("/sessions")
def open_session(body: SessionIn, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """Launch and quote an enclave for one of your tasks; put the attestation into your run.start."""
    wait_for_height(ctx, body.min_height)
    return _sessions(request).open_session(body.task, me.key_id)


@router.get("/sessions/{session}")
def session_progress(session: str, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """Progress of a session's run: per input, frames and bytes received so far; then its state."""
    return _sessions(request).progress(session, me.key_id)


@router.delete("/sessions/{session}")
def discard_session(session: str, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """End an enclave session that will not run (its enclave process exits)."""
    _sessions(request).discard(session, me.key_id)
    return {"session": session, "discarded": True}


@router.post("/sessions/{session}/run")
def run_session(session: str, body: RunIn, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """Fetch every input from its owner into the enclave, run, seal; the statement for your run.finish."""
    wait_for_height(ctx, body.min_height)
    return _sessions(request).execute(session, body.run, me.key_id)


@router.post("/releases/{run}")
def release(run: str, body: ReleaseIn, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """The output encrypted to the task's recipient key, if the ledger shows every owner approved."""
    wait_for_height(ctx, body.min_height)
    return {"run": run, "box": _sessions(request).release(run, me.key_id).hex()}


@router.post("/inputs")
def send_input(body: InputIn, ctx: Ctx, me: Principal = Depends(require_roles("node", own_org=False))) -> Any:
    """(Node to node.) One input of a run, encrypted to the run's attested enclave, as framed bytes."""
    wait_for_height(ctx, body.min_height)
    frames, sender = open_transfer(ctx, run_id=body.run, dataset=body.dataset, caller_key_id=me.key_id)
    headers = {"X-Confide-Sender-Key": sender}
    return StreamingResponse(frames, media_type="application/octet-stream", headers=headers)


@router.get("/functions")
def functions(me: Me) -> list[dict[str, Any]]:
    """The enclave functions this node's runtime registers: name, the exact task code (what a tee task
    carries and the measurement covers), its digest and a one-line summary."""
    out = []
    for name, fn in sorted(FUNCTIONS.items()):
        code = task_code(name)
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        out.append(
            {
                "name": name,
                "code": code,
                "code_digest": hashlib.sha256(code.encode()).hexdigest(),
                "summary": summary,
            }
        )
    return out


@router.get("/transfers/{run}")
def transfers(
    run: str, ctx: Ctx, me: Principal = Depends(require_roles("unit_owner", "org_admin", "auditor"))
) -> list[dict[str, Any]]:
    """What this node sent to the run's enclave: one record per input, with the input digest."""
    return ctx.local.transfers(run)


@router.get("/provenance/{run}")
def run_provenance(run: str, ctx: Ctx, me: Me, min_height: int = -1) -> dict[str, Any]:
    """The result's whole chain, re-verified from this node's own ledger view."""
    wait_for_height(ctx, min_height)
    return provenance(ctx, run)
