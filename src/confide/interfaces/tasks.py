"""A scheduled task's runs as its requester sees them: one line per slot, with its lifecycle.

Lifecycle of a slot (from the requester org's node and the ledger): ``queued`` -> ``waiting for
peers`` -> ``running`` -> ``awaiting release`` -> ``released`` (or ``rejected``), or ``failed``
(with the reason), ``skipped`` (missed while the node was down, by the task's policy) or
``cancelled`` (the slot or its run was cancelled by the requester, or the task before the slot ran).
"""

from __future__ import annotations

from typing import Any

from .client import ApiCallError, Client

__all__ = ["OPEN_STATES", "cancel_slot", "slot_lifecycle", "task_slots"]

OPEN_STATES = ("queued", "waiting for peers", "running", "awaiting release")


def slot_lifecycle(row: dict[str, Any], run: dict[str, Any] | None, release: dict[str, Any] | None) -> str:
    state = str(row["state"])
    if state == "waiting":
        return "waiting for peers"
    if state in ("queued", "skipped", "cancelled"):
        return state
    if run is not None and run["status"] == "cancelled":
        return "cancelled"
    if state == "failed" or (run is not None and run["status"] == "failed"):
        return "failed"
    if run is None or run["status"] == "running":
        return "running"
    status = None if release is None else release.get("status")
    if status == "released":
        return "released"
    if status == "rejected":
        return "rejected"
    return "awaiting release"


def task_slots(client: Client, task: str) -> list[dict[str, Any]]:
    """Each slot the requester org's node took up for ``task``, with its lifecycle and reason."""
    answer = client.call("GET", f"/v1/scheduler/tasks/{task}/slots")
    out = []
    for row in answer["slots"]:
        run = release = None
        if row.get("run"):
            run = client.query(f"run/{row['run']}")
            try:
                release = client.query(f"release/{row['run']}")
            except ApiCallError:
                release = None
        reason = row.get("error") or (run or {}).get("reason") or ""
        out.append(
            {
                "slot": int(row["slot"]),
                "state": slot_lifecycle(row, run, release),
                "run": row.get("run"),
                "reason": reason,
            }
        )
    return out


def cancel_slot(client: Client, task: str, slot: int) -> dict[str, Any]:
    """Cancel one slot of your scheduled task (UTC ms), whether not yet due, queued, waiting for
    peers (no run is started) or running (its run is cancelled on the ledger; every party stops)."""
    out: dict[str, Any] = client.call("POST", f"/v1/scheduler/tasks/{task}/slots/{slot}/cancel", {})
    return out
