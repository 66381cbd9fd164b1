"""Federated-learning runs on the ledger: the task's shape, one record per round, the final model.

An ``fl`` task is horizontal: three or more inputs, each a dataset of a different org, all naming the
same columns (the same features and label in each). ``params.rounds`` (1..1000) training rounds;
``params.threshold`` (optional) the secure-aggregation threshold t with n/2 < t <= n (default
n // 2 + 1). The coordinator is a node of the requester's org: it alone signs ``fl.round`` and
``fl.final``.

* ``fl.round``: rounds are recorded in order from 0 (set-up: the feature statistics and the initial
  model) to ``params.rounds``; each names the orgs whose masked update is in the round's sum (at
  least t of them; a round with fewer never completes, so it is never recorded) and the digest of
  the global model after it.
* ``fl.final``: after the last round, the final model's digest (the last round's) and its
  validation metrics, which the release record carries for the owners to see before they decide.
* ``run.finish`` of an fl run succeeds only with ``output_digest`` = that final digest.
"""

from __future__ import annotations

from typing import Any

from ..codes import Code, Reject
from .ctx import Ctx
from .models import FlFinal, FlRound, TaskSubmit

__all__ = ["check_fl_task", "fl_final", "fl_round", "input_orgs", "threshold"]

MIN_CLIENTS = 3
MAX_ROUNDS = 1000


def input_orgs(ctx: Ctx, task: dict[str, Any]) -> list[str]:
    return [str(ctx.dataset(i["dataset"])["org"]) for i in task["inputs"]]


def threshold(task: dict[str, Any]) -> int:
    n = len(task["inputs"])
    t = task["params"].get("threshold")
    return t if type(t) is int else n // 2 + 1


def check_fl_task(ctx: Ctx, p: TaskSubmit) -> None:
    n = len(p.inputs)
    if n < MIN_CLIENTS:
        raise Reject(
            Code.MALFORMED,
            f"inputs: an fl task has at least {MIN_CLIENTS} inputs (with two, each party would learn the "
            "other's update from the sum)",
        )
    orgs = [ctx.dataset(i.dataset)["org"] for i in p.inputs]
    if len(set(orgs)) != n:
        raise Reject(Code.MALFORMED, "inputs: each input of an fl task is a dataset of a different org")
    if any(i.columns != p.inputs[0].columns for i in p.inputs):
        raise Reject(Code.MALFORMED, "inputs: every input of an fl task names the same columns, in order")
    rounds = p.params.get("rounds")
    if type(rounds) is not int or not 1 <= rounds <= MAX_ROUNDS:
        raise Reject(Code.MALFORMED, f"params.rounds: an integer in [1, {MAX_ROUNDS}]")
    t = p.params.get("threshold")
    if t is not None and (type(t) is not int or not (2 * t > n and t <= n)):
        raise Reject(Code.MALFORMED, f"params.threshold: an integer t with {n}/2 < t <= {n}")
    if p.code is None:
        raise Reject(Code.MALFORMED, "code: an fl task carries its training spec so owners can read it")


def _fl_run(ctx: Ctx, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    run = ctx.load(f"run/{run_id}", "run")
    task = ctx.load(f"task/{run['task']}", "task")
    if task["engine"] != "fl":
        raise Reject(Code.INVALID_STATE, f"run {run_id[:16]} is not an fl run")
    ctx.require(
        ctx.has_role("node") and ctx.org == task["requester_org"],
        "only a node of the requester's org (the coordinator) records fl rounds",
    )
    if run["status"] != "running":
        raise Reject(Code.INVALID_STATE, f"run is {run['status']}")
    if "fl_final" in run:
        raise Reject(Code.INVALID_STATE, "the run's final model is already recorded")
    return run, task


def _check_participants(ctx: Ctx, task: dict[str, Any], participants: list[str]) -> list[str]:
    orgs = input_orgs(ctx, task)
    if participants != sorted(set(participants)):
        raise Reject(Code.MALFORMED, "participants: sorted, each org once")
    outside = sorted(set(participants) - set(orgs))
    if outside:
        raise Reject(Code.OUT_OF_SCOPE, f"participants: {outside} hold no input of the task")
    t = threshold(task)
    if len(participants) < t:
        raise Reject(
            Code.OUT_OF_SCOPE,
            f"participants: {len(participants)}, fewer than the threshold {t}; such a round never completes",
        )
    return sorted(set(orgs) - set(participants))


def fl_round(ctx: Ctx, p: FlRound) -> None:
    run, task = _fl_run(ctx, p.run)
    rounds: list[dict[str, Any]] = run.setdefault("fl_rounds", [])
    if p.round != len(rounds):
        raise Reject(Code.INVALID_STATE, f"round {p.round}: the next round of this run is {len(rounds)}")
    if p.round > task["params"]["rounds"]:
        raise Reject(Code.OUT_OF_SCOPE, f"round {p.round}: the task has {task['params']['rounds']} rounds")
    dropped = _check_participants(ctx, task, p.participants)
    if p.dropped != dropped:
        raise Reject(Code.MALFORMED, f"dropped: must list the other input orgs, {dropped}")
    rounds.append(
        {
            "round": p.round,
            "participants": p.participants,
            "dropped": dropped,
            "model_digest": p.model_digest,
            "tx": ctx.tx.tx_id,
            "at": ctx.now,
        }
    )
    ctx.state.put(f"run/{p.run}", run)
    ctx.emit("fl.round", run=p.run, round=p.round, participants=len(p.participants))


def fl_final(ctx: Ctx, p: FlFinal) -> None:
    run, task = _fl_run(ctx, p.run)
    rounds = run.get("fl_rounds", [])
    want = task["params"]["rounds"] + 1
    if len(rounds) != want:
        raise Reject(Code.INVALID_STATE, f"{len(rounds)} of the {want} rounds (set-up included) recorded")
    if p.model_digest != rounds[-1]["model_digest"]:
        raise Reject(Code.MALFORMED, "model_digest: the final model is the last round's")
    _check_participants(ctx, task, p.participants)
    run["fl_final"] = {
        "model_digest": p.model_digest,
        "participants": p.participants,
        "metrics": dict(p.metrics),
        "tx": ctx.tx.tx_id,
        "at": ctx.now,
    }
    ctx.state.put(f"run/{p.run}", run)
    ctx.emit("fl.final", run=p.run, model_digest=p.model_digest)
