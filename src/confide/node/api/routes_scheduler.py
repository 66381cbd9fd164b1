"""Scheduler routes: what this node's scheduler did with a scheduled task's slots (its requester only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..refusal import Refused
from ..scheduler.service import NodeScheduler
from .deps import Ctx, Me

router = APIRouter(prefix="/v1/scheduler")


@router.get("/tasks/{task}/slots")
def slots(task: str, request: Request, ctx: Ctx, me: Me) -> dict[str, Any]:
    """Each slot this node took up for your scheduled task: state, run, attempts, error."""
    t = ctx.query_or_none(f"task/{task}")
    if t is None or t["requester"] != me.key_id:
        raise Refused("UNKNOWN_TASK", "no such scheduled task of yours on this node", 404)
    sched: NodeScheduler = request.app.state.scheduler
    return {"task": task, "schedule": t.get("schedule"), "slots": sched.store.slots(task)}
