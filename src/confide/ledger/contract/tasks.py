"""Tasks, runs and result releases, as records (engines fill them in later issues).

* ``task.submit``: only the holder of every input grant; each grant must be
  live, for that dataset, allow the engine and cover the columns.
* ``run.start``: grants are re-checked at every run and one use of each is
  consumed; each input digest must be the content digest of a dataset version
  the grant covers.
* ``run.finish``: the requester reports success (with output digest) or failure.
* ``release.decide``: each input dataset's owner (unit owner or org admin)
  approves or rejects; the release is ``released`` only when all approved.

``fl`` tasks and their round records: see ``fl``.

``tee`` runs fail closed: ``run.start`` must carry the enclave's attestation (quote,
channel and result keys, block hash), a succeeded ``run.finish`` the enclave's
result statement bound to it (task, quote digest, output digest, one input digest
per input, the inputs' minimum group size), and each owner's approval the input
digest its node computed over the frames it sent. The contract checks that these
agree; the quote's and statement's signatures are verified by every node
(``confide.node.tee``), which has the genesis attestation roots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from ..codes import Code, Reject
from .catalog import can_manage
from .ctx import Ctx
from .fl import check_fl_task
from .grants import check_grant_use, consume_use
from .models import ReleaseDecide, RunFinish, RunStart, TaskCancel, TaskSubmit
from .schedule import MINUTE_MS, Schedule, is_slot

__all__ = [
    "release_decide",
    "run_finish",
    "run_input_digests",
    "run_start",
    "scheduled",
    "task_cancel",
    "task_submit",
]


def task_submit(ctx: Ctx, p: TaskSubmit) -> None:
    ctx.member()
    datasets = [i.dataset for i in p.inputs]
    if len(set(datasets)) != len(datasets):
        raise Reject(Code.MALFORMED, "inputs: each dataset may appear once")
    for i in p.inputs:
        ctx.dataset(i.dataset)
        check_grant_use(ctx, i.grant, dataset=i.dataset, engine=p.engine, columns=i.columns)
    if p.engine == "fl":
        check_fl_task(ctx, p)
    ctx.state.put(
        f"task/{ctx.tx.tx_id}",
        {
            "id": ctx.tx.tx_id,
            "requester": ctx.tx.signer,
            "requester_org": ctx.org,
            "engine": p.engine,
            "inputs": [i.model_dump() for i in p.inputs],
            "code_digest": p.code_digest,
            "code": p.code,
            "params": p.params,
            "schedule": p.schedule if isinstance(p.schedule, str) else p.schedule.model_dump(),
            "status": "active",
            "runs": [],
            "submitted_at": ctx.now,
        },
    )
    ctx.emit("task.submitted", task=ctx.tx.tx_id, engine=p.engine, inputs=datasets)


def _task(ctx: Ctx, task_id: str) -> dict[str, Any]:
    return ctx.load(f"task/{task_id}", "task")


def task_cancel(ctx: Ctx, p: TaskCancel) -> None:
    task = _task(ctx, p.task)
    ctx.require(task["requester"] == ctx.tx.signer, "only the requester cancels a task")
    if task["status"] != "active":
        raise Reject(Code.INVALID_STATE, f"task is {task['status']}")
    task["status"] = "cancelled"
    task["cancelled"] = {"at": ctx.now, "reason": p.reason}
    ctx.state.put(f"task/{p.task}", task)
    ctx.emit("task.cancelled", task=p.task)


def run_input_digests(query: Callable[[str], Any], task: dict[str, Any]) -> list[str]:
    """The latest dataset version each input's grant covers: what a ``run.start`` names (used by the
    SDK for runs started by hand and by the node's scheduler)."""
    out = []
    for inp in task["inputs"]:
        grant = query(f"application/{inp['grant']}")
        versions = query(f"dataset/{inp['dataset']}")["versions"]
        if grant["versions"] != "latest":
            versions = [v for v in versions if v["version"] in grant["versions"]]
        out.append(versions[-1]["content_digest"])
    return out


def _covered_digests(ds: dict[str, Any], grant: dict[str, Any]) -> set[str]:
    if grant["versions"] == "latest":
        return {ds["versions"][-1]["content_digest"]}
    wanted = set(grant["versions"])
    return {v["content_digest"] for v in ds["versions"] if v["version"] in wanted}


SLOT_EARLY_MS = 5 * MINUTE_MS  # a slot may be started this much before it (clock skew), not more


def scheduled(task: dict[str, Any]) -> Schedule | None:
    """The task's schedule, unless its runs are started by hand."""
    sched = task.get("schedule")
    return Schedule.model_validate(sched) if isinstance(sched, dict) and sched["kind"] != "now" else None


def _check_slot(ctx: Ctx, task: dict[str, Any], p: RunStart) -> Schedule | None:
    """Who may start this run and for which slot: the requester, or for a scheduled task a node of
    the requester's org (its scheduler) once per slot: a second run.start for a slot is refused, so
    a scheduler that crashed after submitting cannot start the same slot twice."""
    sched = scheduled(task)
    by_requester = task["requester"] == ctx.tx.signer
    if sched is None:
        ctx.require(by_requester, "only the task's requester starts its runs")
        if p.slot is not None:
            raise Reject(Code.MALFORMED, "slot: only a scheduled task's runs name a slot")
        return None
    by_node = ctx.has_role("node") and ctx.org == task["requester_org"]
    ctx.require(
        by_requester or by_node, "only the requester or its org's node starts a scheduled task's runs"
    )
    if p.slot is None:
        raise Reject(Code.MALFORMED, "slot: a scheduled task's run names its slot")
    if not is_slot(sched, p.slot):
        raise Reject(Code.OUT_OF_SCOPE, f"slot {p.slot}: not a slot of the task's schedule")
    if p.slot > ctx.now + SLOT_EARLY_MS or p.slot < int(task["submitted_at"]) - MINUTE_MS:
        raise Reject(Code.OUT_OF_SCOPE, f"slot {p.slot}: not due yet, or before the task existed")
    if ctx.state.get(f"slot/{p.task}/{p.slot}") is not None:
        raise Reject(Code.ALREADY_EXISTS, f"slot {p.slot} of task {p.task[:16]} already has a run")
    return sched


def run_start(ctx: Ctx, p: RunStart) -> None:
    task = _task(ctx, p.task)
    sched = _check_slot(ctx, task, p)
    if task["status"] != "active":
        raise Reject(Code.INVALID_STATE, f"task is {task['status']}")
    if len(p.input_digests) != len(task["inputs"]):
        raise Reject(Code.MALFORMED, "input_digests: one digest per task input")
    if task["engine"] == "tee" and p.attestation is None:
        raise Reject(Code.MALFORMED, "attestation: a tee run names its attested enclave (quote and keys)")
    if task["engine"] != "tee" and p.attestation is not None:
        raise Reject(Code.MALFORMED, "attestation: only tee runs carry one")
    grants = []
    for inp, digest in zip(task["inputs"], p.input_digests, strict=True):
        grant = check_grant_use(
            ctx,
            inp["grant"],
            dataset=inp["dataset"],
            engine=task["engine"],
            columns=inp["columns"],
            applicant=task["requester"],
        )
        if digest not in _covered_digests(ctx.dataset(inp["dataset"]), grant):
            raise Reject(
                Code.OUT_OF_SCOPE,
                f"input {inp['dataset']}: digest is not a version the grant covers",
            )
        grants.append(grant)
    for grant in grants:
        consume_use(ctx, grant)
    run_id = ctx.tx.tx_id
    task["runs"].append(run_id)
    ctx.state.put(f"task/{p.task}", task)
    if sched is not None:
        ctx.state.put(f"slot/{p.task}/{p.slot}", {"run": run_id})
    ctx.state.put(
        f"run/{run_id}",
        {
            "id": run_id,
            "task": p.task,
            "input_digests": p.input_digests,
            "attestation_digest": (
                hashlib.sha256(bytes.fromhex(p.attestation.quote)).hexdigest()
                if p.attestation is not None
                else p.attestation_digest
            ),
            **({"attestation": p.attestation.model_dump()} if p.attestation is not None else {}),
            "status": "running",
            "started_at": ctx.now,
            "started_by": ctx.tx.signer,
            **({"slot": p.slot} if p.slot is not None else {}),
        },
    )
    ctx.emit("run.started", run=run_id, task=p.task, slot=p.slot)


def min_group_size(ctx: Ctx, task: dict[str, Any]) -> int:
    """The largest ``min_group_size`` policy among the task's input datasets (0: none set)."""
    return max((ctx.dataset(i["dataset"]).get("min_group_size") or 0 for i in task["inputs"]), default=0)


def _check_statement(ctx: Ctx, task: dict[str, Any], run: dict[str, Any], p: RunFinish) -> None:
    st = p.statement
    if st is None:
        raise Reject(Code.MALFORMED, "statement: a succeeded tee run reports the enclave's signed statement")
    datasets = {i["dataset"] for i in task["inputs"]}
    digests = st.get("input_digests")
    expected = {
        "task_id": task["id"],
        "quote_digest": run["attestation_digest"],
        "output_digest": p.output_digest,
        "tee_type": run["attestation"]["tee_type"],
    }
    for key, want in expected.items():
        if st.get(key) != want:
            raise Reject(Code.MALFORMED, f"statement.{key}: does not match this run ({want})")
    if not isinstance(digests, dict) or set(digests) != datasets:
        raise Reject(Code.MALFORMED, "statement.input_digests: one digest per task input dataset")
    if not all(isinstance(d, str) and len(d) == 64 for d in digests.values()):
        raise Reject(Code.MALFORMED, "statement.input_digests: 64 hex digits each")
    required, checked = min_group_size(ctx, task), st.get("min_group_size")
    if type(checked) is not int or checked < required:
        raise Reject(
            Code.OUT_OF_SCOPE,
            f"statement.min_group_size: the output was checked against {checked}, the inputs' policy "
            f"requires every output row to aggregate at least {required} rows",
        )
    if not isinstance(st.get("preview"), dict):
        raise Reject(Code.MALFORMED, "statement.preview: the owners' preview of the output is missing")


def run_finish(ctx: Ctx, p: RunFinish) -> None:
    run = ctx.load(f"run/{p.run}", "run")
    task = _task(ctx, run["task"])
    by_starter = run.get("slot") is not None and run["started_by"] == ctx.tx.signer  # a scheduler's run
    ctx.require(
        task["requester"] == ctx.tx.signer or by_starter,
        "only the task's requester (or its scheduler) reports its runs",
    )
    if run["status"] != "running":
        raise Reject(Code.INVALID_STATE, f"run is {run['status']}")
    if p.status == "succeeded" and task["engine"] == "tee":
        _check_statement(ctx, task, run, p)
    elif p.status == "succeeded" and task["engine"] == "fl":
        final = run.get("fl_final")
        if final is None or final["model_digest"] != p.output_digest:
            raise Reject(
                Code.INVALID_STATE,
                "output_digest: an fl run succeeds with the final model its coordinator recorded (fl.final)",
            )
    elif p.statement is not None:
        raise Reject(Code.MALFORMED, "statement: only a succeeded tee run carries one")
    run.update(status=p.status, output_digest=p.output_digest, reason=p.reason)
    if p.statement is not None:
        run.update(statement=p.statement, signature=p.signature)
    run["finished_at"], run["finished_tx"] = ctx.now, ctx.tx.tx_id
    ctx.state.put(f"run/{p.run}", run)
    if p.status == "succeeded":
        owners = sorted({i["dataset"] for i in task["inputs"]})
        ctx.state.put(
            f"release/{p.run}",
            {
                "run": p.run,
                "task": task["id"],
                "required": owners,
                "decisions": {},
                "output_digest": p.output_digest,
                "status": "pending",
                **({"metrics": run["fl_final"]["metrics"]} if "fl_final" in run else {}),
            },
        )
    ctx.emit("run.finished", run=p.run, status=p.status)


def release_decide(ctx: Ctx, p: ReleaseDecide) -> None:
    rel = ctx.load(f"release/{p.run}", "release")
    if p.dataset not in rel["required"]:
        raise Reject(Code.NOT_FOUND, f"dataset {p.dataset} is not an input of this run")
    ctx.require(can_manage(ctx, ctx.dataset(p.dataset)), "only the input dataset's owner decides")
    if p.dataset in rel["decisions"]:
        raise Reject(Code.DUPLICATE_DECISION, f"release for {p.dataset} already decided")
    if rel["status"] != "pending":
        raise Reject(Code.INVALID_STATE, f"release is {rel['status']}")
    run = ctx.load(f"run/{p.run}", "run")
    if p.decision == "approve" and "statement" in run:
        sent = run["statement"]["input_digests"][p.dataset]
        if p.input_digest != sent:
            raise Reject(
                Code.OUT_OF_SCOPE,
                f"input_digest: the enclave reports {sent} for {p.dataset}; approve only the input "
                "your node sent (its digest is in the node's record of the transfer)",
            )
    elif p.decision == "approve" and _task(ctx, rel["task"])["engine"] == "tee":
        raise Reject(Code.INVALID_STATE, "a tee run without an attested result statement is never released")
    elif p.input_digest is not None and "statement" not in run:
        raise Reject(Code.MALFORMED, "input_digest: only approvals of tee runs carry one")
    rel["decisions"][p.dataset] = {
        "decision": p.decision,
        "by": ctx.tx.signer,
        "at": ctx.now,
        "reason": p.reason,
        "tx": ctx.tx.tx_id,
        **({"input_digest": p.input_digest} if p.input_digest is not None else {}),
    }
    if p.decision == "reject":
        rel["status"] = "rejected"
    elif set(rel["decisions"]) == set(rel["required"]):
        rel["status"] = "released"
    ctx.state.put(f"release/{p.run}", rel)
    ctx.emit("release.decided", run=p.run, dataset=p.dataset, status=rel["status"])
