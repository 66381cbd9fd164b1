"""What the scheduler must not forget across a restart, in the node's own database (SQLite or
PostgreSQL): each scheduled task's next slot, and each slot it took up, with its state.

``sched_slots`` has one row per (task, slot), inserted *before* the slot is queued: a slot is
taken up at most once on this node, whatever crashes when. States: ``queued`` (in the run queue),
``waiting`` (for the other parties' nodes), ``starting`` (its ``run.start`` is being sent),
``started`` (its ``run.start`` is on the ledger: ``run`` names it), ``done`` / ``failed`` (the
executor finished; ``error`` says why it failed), ``skipped`` (missed while the node was down and
the task's policy is ``skip``, or an older missed slot under ``run_once``), ``cancelled`` (its
requester cancelled it before its run started: a queued or waiting slot, or one not yet due).
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

__all__ = ["SchedulerStore"]

_meta = MetaData()
tasks = Table(
    "sched_tasks",
    _meta,
    Column("task", String(64), primary_key=True),
    Column("schedule", JSON, nullable=False),
    Column("next_slot", BigInteger, nullable=True),  # None: no slot left (a past point in time)
    Column("state", String(16), nullable=False),  # active | ended | cancelled
    Column("added_at", BigInteger, nullable=False),
)
slots = Table(
    "sched_slots",
    _meta,
    Column("task", String(64), primary_key=True),
    Column("slot", BigInteger, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("queued_at", BigInteger, nullable=False),
    Column("run", String(64), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", String(500), nullable=True),
    Column("finished_at", BigInteger, nullable=True),
)
meta = Table(
    "sched_meta",
    _meta,
    Column("key", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
outbox = Table(  # webhook events not yet delivered to every URL: they survive a restart
    "sched_outbox",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", String(2000), nullable=False),
    Column("body", JSON, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("due_at", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # pending | delivered | failed
    Column("error", String(500), nullable=True),
)
OPEN = ("queued", "waiting", "starting", "started")
CANCELLABLE = ("queued", "waiting")


class SchedulerStore:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":  # readers (the API) never wait for a tick's write

            @event.listens_for(self.engine, "connect")
            def _wal(dbapi: Any, _record: Any) -> None:
                cur = dbapi.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.close()

        _meta.create_all(self.engine)
        self._lock = threading.Lock()  # SQLite: one writer at a time in this process

    # -- tasks -------------------------------------------------------------------------------------
    def add_task(self, task: str, schedule: dict[str, Any], next_slot: int | None, now: int) -> bool:
        """Remember a scheduled task (False: it was already known; nothing changes)."""
        row = {"task": task, "schedule": schedule, "next_slot": next_slot, "state": "active", "added_at": now}
        try:
            with self._lock, self.engine.begin() as c:
                c.execute(insert(tasks).values(**row))
            return True
        except IntegrityError:
            return False

    def add_tasks(self, rows: list[tuple[str, dict[str, Any], int | None]], now: int) -> int:
        """Remember many scheduled tasks (task, schedule, next slot) in one transaction; returns how
        many were new (a node catching up with the ledger, or the bench)."""
        with self._lock, self.engine.begin() as c:
            known: set[str] = set()
            ids = [r[0] for r in rows]
            for i in range(0, len(ids), 500):
                known |= {
                    r[0] for r in c.execute(select(tasks.c.task).where(tasks.c.task.in_(ids[i : i + 500])))
                }
            fresh = [
                {"task": t, "schedule": sc, "next_slot": n, "state": "active", "added_at": now}
                for t, sc, n in rows
                if t not in known
            ]
            if fresh:
                c.execute(insert(tasks), fresh)
        return len(fresh)

    def active_tasks(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(select(tasks).where(tasks.c.state == "active")).mappings().all()
        return [dict(r) for r in rows]

    def due_tasks(self, now: int) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            q = select(tasks).where(tasks.c.state == "active", tasks.c.next_slot <= now)
            return [dict(r) for r in c.execute(q).mappings().all()]

    def earliest_next(self) -> int | None:
        """The earliest next slot of any active task (what the scheduler sleeps until)."""
        with self.engine.connect() as c:
            q = select(func.min(tasks.c.next_slot)).where(tasks.c.state == "active")
            value = c.execute(q).scalar()
        return None if value is None else int(value)

    def set_next_many(self, nexts: list[tuple[str, int | None]]) -> None:
        """Move several tasks to their next slot in one transaction (None: the task has ended)."""
        if not nexts:
            return
        rows = [{"t": t, "n": n, "s": "active" if n is not None else "ended"} for t, n in nexts]
        stmt = (
            update(tasks)
            .where(tasks.c.task == bindparam("t"))
            .values(next_slot=bindparam("n"), state=bindparam("s"))
        )
        with self._lock, self.engine.begin() as c:
            c.execute(stmt, rows)

    def set_next(self, task: str, next_slot: int | None) -> None:
        state = "active" if next_slot is not None else "ended"
        with self._lock, self.engine.begin() as c:
            c.execute(update(tasks).where(tasks.c.task == task).values(next_slot=next_slot, state=state))

    def end_task(self, task: str, state: str) -> None:
        """Stop scheduling ``task`` (cancelled on the ledger); a task already ended stays as it is."""
        with self._lock, self.engine.begin() as c:
            q = update(tasks).where(tasks.c.task == task, tasks.c.state == "active")
            c.execute(q.values(state=state, next_slot=None))

    # -- slots -------------------------------------------------------------------------------------
    def take_slot(self, task: str, slot: int, state: str, priority: int, now: int) -> bool:
        """Record that this node takes up (or skips) ``slot``; False if it already did."""
        row = {
            "task": task,
            "slot": slot,
            "state": state,
            "priority": priority,
            "queued_at": now,
            "attempts": 0,
        }
        try:
            with self._lock, self.engine.begin() as c:
                c.execute(insert(slots).values(**row))
            return True
        except IntegrityError:
            return False

    def take_slots(self, rows: list[tuple[str, int, str, int]], now: int) -> list[tuple[str, int, str, int]]:
        """Record many (task, slot, state, priority) in one transaction; returns those not already
        recorded (a slot is taken up at most once). One scheduler writes a node's database."""
        if not rows:
            return []
        with self._lock, self.engine.begin() as c:
            keys = [(t, sl) for t, sl, _, _ in rows]
            seen: set[tuple[str, int]] = set()
            for i in range(0, len(keys), 500):
                q = select(slots.c.task, slots.c.slot).where(
                    tuple_(slots.c.task, slots.c.slot).in_(keys[i : i + 500])
                )
                seen |= {(r[0], r[1]) for r in c.execute(q)}
            fresh = [r for r in rows if (r[0], r[1]) not in seen]
            if fresh:
                c.execute(
                    insert(slots),
                    [
                        {"task": t, "slot": sl, "state": st, "priority": pr, "queued_at": now, "attempts": 0}
                        for t, sl, st, pr in fresh
                    ],
                )
        return fresh

    def mark(
        self, task: str, slot: int, state: str, *, only_from: tuple[str, ...] | None = None, **fields: Any
    ) -> bool:
        """Set a slot's state (only if it is in one of ``only_from``, when given); False if it was not."""
        q = update(slots).where(slots.c.task == task, slots.c.slot == slot)
        if only_from is not None:
            q = q.where(slots.c.state.in_(only_from))
        with self._lock, self.engine.begin() as c:
            return bool(c.execute(q.values(state=state, **fields)).rowcount)

    def cancel_slot(self, task: str, slot: int, priority: int, now: int) -> str:
        """Cancel a slot before its run starts. A slot not taken up yet is recorded ``cancelled`` (the
        scheduler then never takes it up); a queued or waiting one becomes ``cancelled``. Returns the
        slot's state afterwards (``cancelled``, or what it was if it could no longer be cancelled)."""
        with self._lock, self.engine.begin() as c:
            row = c.execute(select(slots.c.state).where(slots.c.task == task, slots.c.slot == slot)).first()
            if row is None:
                c.execute(
                    insert(slots).values(
                        task=task,
                        slot=slot,
                        state="cancelled",
                        priority=priority,
                        queued_at=now,
                        attempts=0,
                        error="cancelled by the requester before it was due",
                        finished_at=now,
                    )
                )
                return "cancelled"
            if row[0] not in CANCELLABLE:
                return str(row[0])
            c.execute(
                update(slots)
                .where(slots.c.task == task, slots.c.slot == slot, slots.c.state.in_(CANCELLABLE))
                .values(
                    state="cancelled",
                    error="cancelled by the requester before its run started",
                    finished_at=now,
                )
            )
            return "cancelled"

    def slot(self, task: str, slot: int) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            q = select(slots).where(slots.c.task == task, slots.c.slot == slot)
            row = c.execute(q).mappings().first()
        return None if row is None else dict(row)

    def slots(self, task: str | None = None) -> list[dict[str, Any]]:
        q = select(slots).order_by(slots.c.task, slots.c.slot)
        if task is not None:
            q = q.where(slots.c.task == task)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings().all()]

    def open_slots(self) -> list[dict[str, Any]]:
        """Slots taken up but not finished: what a restarted node queues again."""
        with self.engine.connect() as c:
            q = select(slots).where(slots.c.state.in_(OPEN)).order_by(slots.c.slot)
            return [dict(r) for r in c.execute(q).mappings().all()]

    # -- notifications -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> int | None:
        with self.engine.connect() as c:
            v = c.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        return None if v is None else int(v)

    def enqueue(
        self, events: list[dict[str, Any]], urls: list[str], now: int, cursor: tuple[str, int] | None = None
    ) -> None:
        """Put events in the outbox (one row per URL), and move ``cursor`` (key, height) in the same
        transaction: an event is either queued and the cursor past its block, or neither."""
        with self._lock, self.engine.begin() as c:
            fresh = {"attempts": 0, "due_at": now, "state": "pending"}
            rows = [{"url": u, "body": e, **fresh} for e in events for u in urls]
            if rows:
                c.execute(insert(outbox), rows)
            if cursor is not None:
                key, value = cursor
                if c.execute(update(meta).where(meta.c.key == key).values(value=value)).rowcount == 0:
                    c.execute(insert(meta).values(key=key, value=value))

    def due_deliveries(self, now: int, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            q = (
                select(outbox)
                .where(outbox.c.state == "pending", outbox.c.due_at <= now)
                .order_by(outbox.c.id)
                .limit(limit)
            )
            return [dict(r) for r in c.execute(q).mappings().all()]

    def next_delivery_at(self) -> int | None:
        with self.engine.connect() as c:
            v = c.execute(select(func.min(outbox.c.due_at)).where(outbox.c.state == "pending")).scalar()
        return None if v is None else int(v)

    def delivered(self, row_id: int, state: str, **fields: Any) -> None:
        with self._lock, self.engine.begin() as c:
            c.execute(update(outbox).where(outbox.c.id == row_id).values(state=state, **fields))

    def deliveries(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(select(outbox).order_by(outbox.c.id)).mappings().all()]

    def close(self) -> None:
        self.engine.dispose()
