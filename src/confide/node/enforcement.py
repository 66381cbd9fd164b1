"""The enforcer: a node hands its data to a computation only under a live grant.

Checked against the node's *own* ledger view, never the requester's word:
the dataset is this org's, the grant exists and is for that dataset and that
requester, it is approved and neither revoked, exhausted nor expired (expiry is
judged at the later of the view's block time and the node's clock — a lagging
view must not stretch a grant), the engine is granted and every asked column
is granted. Every decision, yes or no, is written to the node's use log.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..ledger.contract.ctx import effective_grant_status
from .context import NodeContext
from .refusal import Refused

__all__ = ["EnforcementDenied", "authorize_task_input", "authorize_use"]


class EnforcementDenied(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check(
    ctx: NodeContext, dataset: str, grant_id: str, engine: str, columns: Sequence[str], requester: str
) -> dict[str, Any]:
    ds = ctx.query_or_none(f"dataset/{dataset}")
    if ds is None:
        raise EnforcementDenied(f"dataset {dataset} is not on the ledger")
    if ds["org"] != ctx.config.org:
        raise EnforcementDenied(f"dataset {dataset} belongs to org {ds['org']}, not to this node")
    with ctx.lock:
        grant = ctx.state.get(f"app/{grant_id}")
    if grant is None or grant["dataset"] != dataset:
        raise EnforcementDenied(f"no grant {grant_id[:16]} for dataset {dataset}")
    if grant["applicant"] != requester:
        raise EnforcementDenied("the grant belongs to another applicant")
    now = max(ctx.now(), int(time.time() * 1000))
    status = effective_grant_status(grant, now)
    if status != "approved":
        raise EnforcementDenied(f"grant is {status}")
    if engine not in grant["engines"]:
        raise EnforcementDenied(f"engine {engine!r} is not granted")
    extra = sorted(set(columns) - set(grant["columns"]))
    if extra:
        raise EnforcementDenied(f"columns outside the grant: {extra}")
    return dict(grant)


def authorize_use(
    ctx: NodeContext, *, dataset: str, grant_id: str, engine: str, columns: Sequence[str], requester: str
) -> dict[str, Any]:
    """Return the grant if this use is allowed; raise :class:`EnforcementDenied` otherwise. Logs both."""
    row = {
        "dataset": dataset,
        "grant": grant_id,
        "requester": requester,
        "engine": engine,
        "columns": list(columns),
    }
    try:
        grant = _check(ctx, dataset, grant_id, engine, columns, requester)
    except EnforcementDenied as exc:
        ctx.local.record_use(**row, allowed=0, reason=exc.reason)
        raise
    ctx.local.record_use(**row, allowed=1, reason="")
    return grant


def authorize_task_input(
    ctx: NodeContext, task: dict[str, Any], inp: dict[str, Any], engine: str
) -> dict[str, Any]:
    """:func:`authorize_use` for one input of a task run by ``engine``; refused ``GRANT_REFUSED``."""
    try:
        return authorize_use(
            ctx,
            dataset=inp["dataset"],
            grant_id=inp["grant"],
            engine=engine,
            columns=inp["columns"],
            requester=task["requester"],
        )
    except EnforcementDenied as exc:
        raise Refused("GRANT_REFUSED", f"grant refused: {exc.reason}") from None
