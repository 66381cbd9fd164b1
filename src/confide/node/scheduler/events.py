"""What an org should hear about, read off the node's own ledger view: the webhook events.

Every run of a task, whoever started it (by hand or by a scheduler), is on the ledger; so are the
release decisions. ``ledger_events`` turns the committed txs of new blocks into the events that
concern ``org`` — as the task's requester's org, or as the owner of one of its input datasets:

- ``run.started`` (requester), ``run.failed`` / ``run.cancelled`` (requester and owners, with the
  reason), ``run.awaiting_release`` (requester: the owners must now decide);
- ``release.decision_needed`` (each owner org, one per input dataset it owns: the run succeeded and
  its output waits for that owner's decision, which it takes after the preview);
- ``release.released`` / ``release.rejected`` (requester and owners).

Each event has an ``id`` (the tx id and the event kind; per dataset where there is one) so a
receiver can de-duplicate: delivery is at least once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["ledger_events"]

Query = Callable[[str], Any]


def ledger_events(org: str, txs: Iterable[dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    """The events for ``org`` in ``txs`` (committed tx rows with their contract events), in order."""
    out: list[dict[str, Any]] = []
    for tx in txs:
        if tx.get("code") not in (0, None):
            continue
        for ev in tx.get("events") or []:
            out += _for(org, str(tx["tx_id"]), int(tx["height"]), ev, query)
    return out


def _for(org: str, tx_id: str, height: int, ev: dict[str, Any], query: Query) -> list[dict[str, Any]]:
    kind = ev.get("type")
    if kind not in ("run.started", "run.finished", "release.decided"):
        return []
    run = query(f"run/{ev['run']}")
    task = query(f"task/{run['task']}")
    owned = sorted(i["dataset"] for i in task["inputs"] if str(i["dataset"]).split("/", 1)[0] == org)
    requester = task.get("requester_org") == org
    if not requester and not owned:
        return []
    base = {"org": org, "run": run["id"], "task": task["id"], "engine": task["engine"], "height": height}
    if run.get("slot") is not None:
        base["slot"] = run["slot"]

    def event(name: str, suffix: str = "", **extra: Any) -> dict[str, Any]:
        return base | {"event": name, "id": f"{tx_id}:{name}{suffix}"} | extra

    if kind == "run.started":
        return [event("run.started")] if requester else []
    if kind == "run.finished":
        status = ev.get("status")
        if status in ("failed", "cancelled"):
            return [event(f"run.{status}", reason=run.get("reason") or "")]
        if status != "succeeded":
            return []
        out = [event("run.awaiting_release", output_digest=run["output_digest"])] if requester else []
        return out + [event("release.decision_needed", f":{d}", dataset=d) for d in owned]
    status = ev.get("status")  # release.decided: only the decision that settles it is news
    if status not in ("released", "rejected"):
        return []
    return [event(f"release.{status}", decided_by_dataset=ev.get("dataset"))]
