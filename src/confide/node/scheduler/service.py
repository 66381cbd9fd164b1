"""The scheduler inside an org node: its org's scheduled tasks, from its own ledger view, run by it.

- **Which tasks**: every active task whose requester belongs to this node's org and whose schedule
  is not ``now`` (read from the node's replica whenever its height moved); a cancelled task stops.
- **Each slot** (``Scheduler``): ``run.start`` with the slot, signed by this node's key (the
  contract lets the requester org's node start a scheduled task's runs and refuses a second run for
  a slot, so after a crash the node adopts the run the ledger already has); grants are re-checked by
  the contract at every run (a revoked, expired or used-up grant fails the slot with that reason);
  then the engine's step as the task's requester would drive it on this node (``psi``: the node is
  the receiver; ``mpc``: party 0), then ``run.finish`` signed by the same key. A refusal by any node
  finishes the run ``failed`` with its code and message. ``tee`` tasks need the requester's enclave
  session and are not scheduled by the node yet: such a slot fails with ``NOT_SCHEDULABLE``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ...ledger.contract.schedule import Schedule, next_slot
from ...ledger.contract.tasks import run_input_digests
from ...ledger.errors import TxRefused
from ...ledger.tx import build_tx
from ..context import NodeContext
from ..refusal import Refused
from .clock import Clock, SystemClock
from .scheduler import Job, Scheduler
from .store import SchedulerStore

__all__ = ["EngineStep", "NodeScheduler"]

log = logging.getLogger("confide.node.scheduler")
EngineStep = Callable[[str, str], str]
"""(run id, requester key id) -> the run's output digest; raises ``Refused`` when it cannot."""
SYNC_EVERY_S = 1.0


class NotSchedulable(Refused):
    pass


class NodeScheduler:
    def __init__(
        self, ctx: NodeContext, steps: dict[str, EngineStep], *, clock: Clock | None = None, workers: int = 2
    ) -> None:
        self.ctx, self.steps = ctx, steps
        self.store = SchedulerStore(ctx.config.database_url)
        self.scheduler = Scheduler(self.store, clock or SystemClock(), self.execute, workers=workers)
        self.scheduler.before_tick = self.sync
        self._synced_height, self._synced_at = -1, 0.0

    def start(self) -> None:
        self.sync()
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        self.store.close()

    # -- which tasks ---------------------------------------------------------------------------------
    def sync(self) -> None:
        """Learn this org's scheduled tasks (and cancellations) from the node's ledger view."""
        height = self.ctx.replica.height
        if height == self._synced_height and time.monotonic() - self._synced_at < 30:
            return
        me = self.ctx.config.org
        with self.ctx.lock:
            found = [t for _, t in self.ctx.state.scan("task/") if t.get("requester_org") == me]
        rows: list[tuple[str, dict[str, Any], int | None]] = []
        for t in found:
            sched = t.get("schedule")
            if not isinstance(sched, dict) or sched.get("kind") == "now":
                continue
            if t["status"] != "active":
                self.store.end_task(t["id"], t["status"])
                continue
            s = Schedule.model_validate(sched)
            rows.append((t["id"], s.model_dump(), next_slot(s, int(t["submitted_at"]) - 1)))
        if self.store.add_tasks(rows, self.scheduler.clock.now_ms()):
            log.info("scheduler: %d scheduled task(s) of %s on the ledger", len(rows), me)
        self._synced_height, self._synced_at = height, time.monotonic()

    # -- one slot ------------------------------------------------------------------------------------
    def execute(self, job: Job) -> str | None:
        task = self.ctx.query(f"task/{job.task}")
        if task["status"] != "active":
            raise RuntimeError(f"the task is {task['status']}")
        run_id = self._start(task, job)
        if self.ctx.query(f"run/{run_id}")["status"] != "running":
            return run_id  # adopted after a restart: it already ended
        step = self.steps.get(task["engine"])
        try:
            if step is None:
                raise NotSchedulable(
                    "NOT_SCHEDULABLE", f"{task['engine']} tasks are not run by the node's scheduler yet", 409
                )
            digest = step(run_id, task["requester"])
        except Refused as exc:
            self._finish(run_id, None, f"{exc.code}: {exc.message}")
            raise RuntimeError(f"{exc.code}: {exc.message}") from None
        self._finish(run_id, digest, "")
        return run_id

    def _submit(self, tx_type: str, payload: dict[str, Any]) -> tuple[str, int]:
        ctx = self.ctx
        receipt = ctx.remote.submit(build_tx(ctx.identity, ctx.genesis.chain_id, tx_type, payload))
        ctx.follower.nudge()
        ctx.follower.wait_for(receipt.height)
        return receipt.tx_id, receipt.height

    def _slot_run(self, job: Job) -> str | None:
        with self.ctx.lock:
            rec = self.ctx.state.get(f"slot/{job.task}/{job.slot}")
        return None if rec is None else str(rec["run"])

    def _start(self, task: dict[str, Any], job: Job) -> str:
        """This slot's run: the one the ledger has, or a new one (run.start signed by this node)."""
        existing = self._slot_run(job)
        if existing is None:
            digests = run_input_digests(self.ctx.query, task)
            payload = {"task": job.task, "input_digests": digests, "slot": job.slot}
            try:
                existing, _ = self._submit("run.start", payload)
            except TxRefused as exc:
                if exc.name != "ALREADY_EXISTS":  # revoked, expired, used up, ...: this slot fails
                    raise RuntimeError(f"run.start refused: {exc.name}: {exc.reason}") from None
                self.ctx.follower.nudge()
                self.ctx.follower.wait_for(self.ctx.replica.height + 1, timeout_s=5)
                existing = self._slot_run(job)
                if existing is None:
                    raise RuntimeError(
                        "the ledger has a run for this slot that this node cannot see yet"
                    ) from None
        self.store.mark(job.task, job.slot, "started", run=existing)
        return existing

    def _finish(self, run_id: str, digest: str | None, reason: str) -> None:
        payload: dict[str, Any] = {"run": run_id, "status": "succeeded" if digest else "failed"}
        payload |= {"output_digest": digest} if digest else {"reason": reason[:2000]}
        self._submit("run.finish", payload)
