"""The scheduler inside an org node: its org's scheduled tasks, from its own ledger view, run by it.

- **Which tasks**: every active task whose requester belongs to this node's org and whose schedule
  is not ``now`` (read from the node's replica whenever its height moved); a cancelled task stops.
- **Each slot** (``Scheduler``): first every other party's node must answer (``notify.wait_for_peers``:
  a node that is down is asked again with backoff; after the last try the slot fails ``PEER_DOWN``
  and no run is started), then ``run.start`` with the slot, signed by this node's key (the
  contract lets the requester org's node start a scheduled task's runs and refuses a second run for
  a slot, so after a crash the node adopts the run the ledger already has); grants are re-checked by
  the contract at every run (a revoked, expired or used-up grant fails the slot with that reason);
  then the engine's step as the task's requester would drive it on this node (``psi``: the node is
  the receiver; ``mpc``: party 0; ``tee``: the node hosts the enclave, whose attestation goes into
  ``run.start``), then ``run.finish`` signed by the same key. A refusal by any node finishes the
  run ``failed`` with its code and message.
- **Webhooks** (``node.json`` ``webhooks``): for every run of a task of this org or over its
  datasets, started by hand or by a scheduler, read off the new blocks (``events.ledger_events``:
  run started / awaiting release / failed / cancelled, release decision needed / released /
  rejected), and ``slot.failed`` for a slot that failed before its run started — signed JSON from
  an outbox in the node's database (``notify.Webhooks``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from ...ledger.contract.schedule import Schedule, is_slot, next_slot
from ...ledger.contract.tasks import run_input_digests
from ...ledger.errors import TxRefused
from ...ledger.tx import build_tx
from ..context import NodeContext
from ..peers import peer_client
from ..refusal import Refused
from .clock import Clock, SystemClock, node_clock
from .events import ledger_events
from .notify import Webhooks, wait_for_peers
from .scheduler import Job, Scheduler
from .store import SchedulerStore

__all__ = ["EngineDriver", "NodeScheduler", "digest_only"]

log = logging.getLogger("confide.node.scheduler")
PEER_TRIES, PEER_BACKOFF_MS = 5, 1_000


@dataclass(frozen=True)
class EngineDriver:
    """How the node drives one engine's run for a task's requester (narrow, one per engine).

    ``run(run id, requester key id, prepared)`` does the engine's work and returns the fields of the
    run's ``run.finish`` (at least ``output_digest``); it raises ``Refused`` when it cannot.
    ``prepare(task, requester key id)``, when the engine needs something before ``run.start`` (a tee
    run names its attested enclave), returns (extra ``run.start`` fields, what ``run`` gets);
    ``discard(prepared)`` releases it when the run does not start.
    """

    run: Callable[[str, str, Any], dict[str, Any]]
    prepare: Callable[[dict[str, Any], str], tuple[dict[str, Any], Any]] | None = None
    discard: Callable[[Any], None] = lambda _prepared: None


def digest_only(step: Callable[[str, str], Any]) -> EngineDriver:
    """A driver for engines whose step returns a result with its ``output_digest`` (psi, mpc)."""

    def run(run_id: str, requester: str, _prepared: Any) -> dict[str, Any]:
        return {"output_digest": str(step(run_id, requester)["output_digest"])}

    return EngineDriver(run=run)


SYNC_EVERY_S = 1.0
CURSOR = "webhooks_height"  # the last block whose events were queued


class SlotCancelled(Exception):
    """The slot was cancelled by its requester before its run started."""


OPEN_BEFORE_RUN = ("queued", "waiting", "starting")


class NodeScheduler:
    def __init__(
        self,
        ctx: NodeContext,
        drivers: dict[str, EngineDriver],
        *,
        clock: Clock | None = None,
        workers: int = 2,
        on_new_blocks: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.ctx, self.drivers, self.on_new_blocks = ctx, drivers, list(on_new_blocks)
        self.store = SchedulerStore(ctx.config.database_url)
        self.scheduler = Scheduler(self.store, clock or node_clock(), self.execute, workers=workers)
        self.scheduler.before_tick = self.sync
        self._synced_height, self._synced_at = -1, 0.0
        self._http = peer_client(ctx, httpx.Timeout(5.0))
        self.webhooks = Webhooks(ctx.config.webhooks, ctx.identity, self.store, SystemClock())
        self.peer_tries, self.peer_backoff_ms = PEER_TRIES, PEER_BACKOFF_MS
        self._stop = threading.Event()

    def start(self) -> None:
        self.sync()
        self.webhooks.start()
        self.scheduler.start()

    def stop(self) -> None:
        self._stop.set()
        self.scheduler.stop()
        self.store.close()
        self._http.close()
        self.webhooks.close()

    # -- which tasks ---------------------------------------------------------------------------------
    def sync(self) -> None:
        """Learn this org's scheduled tasks (and cancellations) from the node's ledger view."""
        height = self.ctx.replica.height
        if height == self._synced_height and time.monotonic() - self._synced_at < 30:
            return
        for hook in self.on_new_blocks:  # e.g. stop the engine sessions of runs cancelled meanwhile
            try:
                hook()
            except Exception:
                log.exception("a new-blocks hook failed")
        try:
            self.notify_blocks()
        except Exception:
            log.exception("reading new blocks for webhook events failed")
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

    # -- notifications -----------------------------------------------------------------------------
    def notify_blocks(self, max_blocks: int = 500) -> int:
        """Queue the webhook events of the blocks this node committed since it last looked (the
        cursor moves in the same transaction). A node's first look starts at its head: no history."""
        height = self.ctx.replica.height
        seen = self.store.get_meta(CURSOR)
        if seen is None or not self.webhooks.urls:
            self.webhooks.notify(cursor=(CURSOR, height))
            return 0
        upto = min(height, seen + max_blocks)
        if upto <= seen:
            return 0
        txs = [tx for h in range(seen + 1, upto + 1) for tx in self.ctx.store.txs_in_block(h)]
        events = ledger_events(self.ctx.config.org, txs, self.ctx.query)
        self.webhooks.notify(*events, cursor=(CURSOR, upto))
        return len(events)

    # -- cancelling ----------------------------------------------------------------------------------
    def cancel_slot(self, task: dict[str, Any], slot: int) -> dict[str, Any]:
        """Cancel one slot of a scheduled task of this org: before its run started, the slot is
        dropped here (no run, no grant use); once started, its run is cancelled on the ledger (signed
        by this node, which started it) and every party's node stops and erases its part."""
        s = Schedule.model_validate(task["schedule"])
        if not is_slot(s, slot):
            raise Refused("NOT_A_SLOT", f"{slot} is not one of this task's slots (UTC ms)", 422)
        now = self.scheduler.clock.now_ms()
        state = self.store.cancel_slot(task["id"], slot, s.priority, now)
        if state == "cancelled":
            return {"task": task["id"], "slot": slot, "state": "cancelled", "run": None}
        row = self.store.slot(task["id"], slot) or {}
        run_id = row.get("run") or self._slot_run(Job(task["id"], slot))
        run = None if run_id is None else self.ctx.query_or_none(f"run/{run_id}")
        if run is None or run["status"] != "running":
            why = f"its run {run['status']}" if run else "its run is being started; try again in a moment"
            raise Refused("SLOT_ENDED", f"slot {slot} can no longer be cancelled: {why}", 409)
        payload = {"run": run_id, "status": "cancelled", "reason": "cancelled by the requester"}
        self._submit("run.finish", payload)
        return {"task": task["id"], "slot": slot, "state": "cancelled", "run": run_id}

    # -- one slot ------------------------------------------------------------------------------------
    def execute(self, job: Job) -> str | None:
        event = {"task": job.task, "slot": job.slot, "org": self.ctx.config.org}
        try:
            return self._execute(job, event)
        except SlotCancelled:
            log.info("task %s: slot %d cancelled before its run started", job.task[:16], job.slot)
            return None
        except Exception as exc:
            if "run" not in event:  # no run started: the ledger has nothing to tell, this node does
                ident = f"slot:{job.task}:{job.slot}:failed"
                self.webhooks.notify(event | {"event": "slot.failed", "id": ident, "reason": str(exc)[:500]})
            raise

    def _execute(self, job: Job, event: dict[str, Any]) -> str | None:
        task = self.ctx.query(f"task/{job.task}")
        row = self.store.slot(job.task, job.slot) or {}
        if row.get("state") == "cancelled":  # by its requester, before it ran: nothing to do
            return None
        if row.get("state") == "started" and row.get("run"):  # this node died during the run
            return self._interrupted(str(row["run"]), event)
        if task["status"] != "active":
            raise RuntimeError(f"the task is {task['status']}")
        if self._slot_run(job) is None:  # before run.start spends a grant use: are the peers there?
            self._move(job, "waiting")

            def waiting(why: str) -> None:
                self._move(job, "waiting", error=why[:500])

            wait_for_peers(
                self._probe,
                self._peer_orgs(task),
                self.scheduler.clock,
                self._stop,
                tries=self.peer_tries,
                backoff_ms=self.peer_backoff_ms,
                on_wait=waiting,
            )
        self._move(job, "starting")  # from here on, cancelling the slot means cancelling its run
        driver = self.drivers.get(task["engine"])
        if driver is None:
            raise RuntimeError(f"NOT_SCHEDULABLE: this node cannot run {task['engine']} tasks")
        extra: dict[str, Any] = {}
        prepared: Any = None
        if driver.prepare is not None and self._slot_run(job) is None:
            try:
                extra, prepared = driver.prepare(task, task["requester"])
            except Refused as exc:  # e.g. this node hosts no enclave: no run is started
                raise RuntimeError(f"{exc.code}: {exc.message}") from None
        try:
            run_id = self._start(task, job, extra)
        except BaseException:
            driver.discard(prepared)
            raise
        event["run"] = run_id
        if self.ctx.query(f"run/{run_id}")["status"] != "running":
            driver.discard(prepared)
            return run_id  # adopted after a restart: it already ended
        try:
            fields = driver.run(run_id, task["requester"], prepared)
        except Refused as exc:
            self._finish(run_id, None, f"{exc.code}: {exc.message}")
            raise RuntimeError(f"{exc.code}: {exc.message}") from None
        self._finish(run_id, fields, "")
        return run_id

    def _move(self, job: Job, state: str, **fields: Any) -> None:
        """Move an open slot on; a slot its requester cancelled meanwhile stops here (no run started)."""
        if not self.store.mark(job.task, job.slot, state, only_from=OPEN_BEFORE_RUN, **fields):
            raise SlotCancelled()

    def _interrupted(self, run_id: str, event: dict[str, Any]) -> str:
        """A run this node started before it was killed: its parties claimed their inputs for it
        once, so it cannot resume; it is reported failed (not lost, not run twice)."""
        event["run"] = run_id
        if self.ctx.query(f"run/{run_id}")["status"] == "running":
            reason = "INTERRUPTED: the requester's node restarted during the run; the next slot runs anew"
            self._finish(run_id, None, reason)
            raise RuntimeError(reason)
        return run_id

    def _peer_orgs(self, task: dict[str, Any]) -> list[str]:
        """The other parties' orgs (every input's owner and an mpc task's dealer), not this one."""
        orgs = {str(self.ctx.query(f"dataset/{i['dataset']}")["org"]) for i in task["inputs"]}
        dealer = task["params"].get("dealer")
        if task["engine"] == "mpc" and isinstance(dealer, str):
            orgs.add(dealer)
        orgs.discard(self.ctx.config.org)
        return sorted(orgs)

    def _probe(self, org: str) -> str | None:
        """None if ``org``'s node answers its health check, else why not."""
        url = self.ctx.config.peers.get(org)
        if url is None:
            return "no link configured in node.json peers"
        try:
            resp = self._http.get(url.rstrip("/") + "/v1/health")
        except httpx.HTTPError as exc:
            return f"unreachable ({type(exc).__name__})"
        return None if resp.status_code == 200 else f"HTTP {resp.status_code}"

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

    def _start(self, task: dict[str, Any], job: Job, extra: dict[str, Any]) -> str:
        """This slot's run: the one the ledger has, or a new one (run.start signed by this node)."""
        existing = self._slot_run(job)
        if existing is None:
            digests = run_input_digests(self.ctx.query, task)
            payload = {"task": job.task, "input_digests": digests, "slot": job.slot, **extra}
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

    def _finish(self, run_id: str, fields: dict[str, Any] | None, reason: str) -> None:
        """Report the run (succeeded with ``fields``, else failed); a run that ended meanwhile (its
        requester cancelled it) keeps that status."""
        payload: dict[str, Any] = {"run": run_id, "status": "succeeded" if fields else "failed"}
        payload |= fields if fields else {"reason": reason[:2000]}
        try:
            self._submit("run.finish", payload)
        except TxRefused:
            if self.ctx.query(f"run/{run_id}")["status"] == "running":
                raise
