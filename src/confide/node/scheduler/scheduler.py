"""The node's scheduler: scheduled tasks' slots become jobs in a priority run queue, once each.

- **Slots** come from the task's schedule on the ledger (``ledger.contract.schedule``): a point in
  time, or cron in a zone. The loop sleeps until the earliest next slot (at most ``max_wait_ms``),
  then takes up every due slot in one database transaction before queueing it.
- **Missed slots** (due more than ``grace_ms`` ago: the node was down or busy): ``run_once`` queues
  one catch-up run, for the latest of them, and records the older ones ``skipped``; ``skip`` queues
  none of them. A slot due within the grace period is on time and always queued (if several are,
  the latest: a node never runs a backlog).
- **At most once per slot on this node**: ``sched_slots`` has one row per (task, slot), written
  before the job is queued. A restarted node queues its ``queued`` / ``started`` slots again; the
  executor's ``run.start`` names the slot and the ledger refuses a second run for it, so a crash
  between "started on the ledger" and "recorded here" cannot run a slot twice (the executor adopts
  the run the ledger already has) and nothing taken up is lost.
- **Run queue**: highest ``priority`` first, then earliest slot; ``workers`` jobs at a time (the
  node's concurrency limit). ``lateness`` records, per job, how late it was put in the queue
  against its slot (``confide bench scheduler``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...ledger.contract.schedule import Schedule, next_slot, slots_between
from .clock import Clock
from .store import OPEN, SchedulerStore

__all__ = ["Executor", "Job", "RunQueue", "Scheduler"]

log = logging.getLogger("confide.node.scheduler")
GRACE_MS = 60_000


@dataclass(frozen=True, order=True)
class Job:
    task: str
    slot: int
    priority: int = 5


class Executor(Protocol):
    def __call__(self, job: Job) -> str | None:
        """Run one slot of a task; return the run id (None for a no-op), raise to fail it."""
        ...


@dataclass(order=True)
class _Entry:
    key: tuple[int, int, int]
    job: Job = field(compare=False)


class RunQueue:
    """Priority queue with ``workers`` threads; ``on_done(job, run, error)`` after each job."""

    def __init__(
        self, execute: Executor, on_done: Callable[[Job, str | None, str | None], None], workers: int = 2
    ) -> None:
        self._execute, self._on_done = execute, on_done
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._work, daemon=True, name=f"runq-{i}") for i in range(workers)
        ]
        self.running = 0

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def put(self, job: Job) -> None:
        with self._cv:
            heapq.heappush(self._heap, _Entry((-job.priority, job.slot, next(self._seq)), job))
            self._cv.notify()

    def depth(self) -> int:
        with self._cv:
            return len(self._heap)

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._heap and not self._stopped:
                    self._cv.wait()
                if self._stopped:
                    return
                job = heapq.heappop(self._heap).job
                self.running += 1
            run, error = None, None
            try:
                run = self._execute(job)
            except Exception as exc:  # the job failed; the reason is recorded, the worker goes on
                error = f"{type(exc).__name__}: {exc}"[:500]
            finally:
                with self._cv:
                    self.running -= 1
            self._on_done(job, run, error)


class Scheduler:
    def __init__(
        self,
        store: SchedulerStore,
        clock: Clock,
        execute: Executor,
        *,
        workers: int = 2,
        grace_ms: int = GRACE_MS,
        max_wait_ms: int = 1_000,
    ) -> None:
        self.store, self.clock = store, clock
        self.grace_ms, self.max_wait_ms = grace_ms, max_wait_ms
        self.queue = RunQueue(execute, self._done, workers)
        self.lateness: list[int] = []  # ms between a slot and its job entering the queue
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.before_tick: Callable[[], None] | None = None  # e.g. learn new tasks from the ledger

    # -- tasks -------------------------------------------------------------------------------------
    def add(self, task: str, schedule: dict[str, Any], since_ms: int) -> bool:
        """Schedule a task (from the ledger) whose slots count from ``since_ms`` (its submission)."""
        s = Schedule.model_validate(schedule)
        if s.kind == "now":
            return False
        added = self.store.add_task(task, s.model_dump(), next_slot(s, since_ms - 1), self.clock.now_ms())
        self._wake.set()
        return added

    def cancel(self, task: str) -> None:
        self.store.end_task(task, "cancelled")

    # -- the loop ----------------------------------------------------------------------------------
    def tick(self) -> int:
        """Take up every due slot; returns how many jobs were queued."""
        now = self.clock.now_ms()
        decisions: list[tuple[str, int, str, int]] = []
        nexts: list[tuple[str, int | None]] = []
        for t in self.store.due_tasks(now):
            s = Schedule.model_validate(t["schedule"])
            due = [int(t["next_slot"]), *slots_between(s, int(t["next_slot"]), now)]
            on_time = [x for x in due if now - x <= self.grace_ms]
            late = [x for x in due if now - x > self.grace_ms]
            chosen = set(on_time[-1:])
            if s.missed == "run_once":
                chosen |= set(late[-1:])
            decisions += [(t["task"], x, "queued" if x in chosen else "skipped", s.priority) for x in due]
            nexts.append((t["task"], next_slot(s, now)))
        fresh = self.store.take_slots(decisions, now)
        self.store.set_next_many(nexts)
        queued = 0
        for task, slot, state, priority in fresh:
            if state == "queued":
                self.queue.put(Job(task, slot, priority))
                self.lateness.append(self.clock.now_ms() - slot)
                queued += 1
            else:
                log.info("task %s: slot %d missed while the node was down: skipped", task[:16], slot)
        return queued

    def recover(self) -> int:
        """Queue again what a previous process took up but did not finish (after a crash)."""
        rows = self.store.open_slots()
        for r in rows:
            self.queue.put(Job(r["task"], int(r["slot"]), int(r["priority"])))
        return len(rows)

    def _wait_ms(self) -> int:
        upcoming = self.store.earliest_next()
        if upcoming is None:
            return self.max_wait_ms
        return max(0, min(upcoming - self.clock.now_ms(), self.max_wait_ms))

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait_ms = self.max_wait_ms
            try:
                if self.before_tick is not None:
                    self.before_tick()
                self.tick()
                wait_ms = self._wait_ms()
            except Exception:  # a database or clock hiccup: log it, try again on the next turn
                log.exception("scheduler tick failed")
            self._wake.clear()
            self.clock.wait(self._wake, wait_ms)

    def start(self) -> None:
        self.queue.start()
        self.recover()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="scheduler")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.queue.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _done(self, job: Job, run: str | None, error: str | None) -> None:
        state = "failed" if error else "done"
        fields: dict[str, Any] = {"error": error, "finished_at": self.clock.now_ms()}
        if run is not None:  # a failed step keeps the run id recorded when it started
            fields["run"] = run
        # a slot cancelled before its run started stays cancelled
        self.store.mark(job.task, job.slot, state, only_from=OPEN, **fields)
