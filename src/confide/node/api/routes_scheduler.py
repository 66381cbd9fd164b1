"""Scheduler routes: what this node's scheduler did with a scheduled task's slots (its requester only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..refusal import Refused
from ..scheduler.service import NodeScheduler
from .deps import Ctx, Me

router = APIRouter(prefix="/v1/scheduler")


def _own_scheduled(ctx: Ctx, me: Me, task: str) -> dict[str, Any]:
    t = ctx.query_or_none(f"task/{task}")
    if t is None or t["requester"] != me.key_id:
        raise Refused("UNKNOWN_TASK", "no such scheduled task of yours on this node", 404)
    if t.get("requester_org") != ctx.config.org:
        raise Refused("NOT_THIS_NODE", "the task's slots are run by its requester's org node", 409)
    return dict(t)


@router.get("/tasks/{task}/slots")
def slots(task: str, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """Each slot this node took up for your scheduled task: state, run, attempts, error."""
    t = _own_scheduled(ctx, me, task)
    sched: NodeScheduler = request.app.state.scheduler
    return {"task": task, "schedule": t.get("schedule"), "slots": sched.store.slots(task)}


@router.post("/tasks/{task}/slots/{slot}/cancel")
def cancel_slot(task: str, slot: int, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """Cancel one slot of your scheduled task: not yet due, queued or waiting for peers (no run is
    started, no grant use spent), or running (its run is cancelled on the ledger and every party
    stops). A slot whose run already ended cannot be cancelled (409 ``SLOT_ENDED``)."""
    t = _own_scheduled(ctx, me, task)
    if not isinstance(t.get("schedule"), dict) or t["schedule"].get("kind") == "now":
        raise Refused("NOT_SCHEDULED", "the task has no schedule; cancel its run instead", 409)
    if t["status"] != "active":
        raise Refused("TASK_NOT_ACTIVE", f"the task is {t['status']}", 409)
    sched: NodeScheduler = request.app.state.scheduler
    return sched.cancel_slot(t, slot)
