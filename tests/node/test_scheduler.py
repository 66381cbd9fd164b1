"""The node's scheduler with an injected clock (no waiting for real slots): cron slots across a day,
a point in time once, both missed-run policies, priorities and the concurrency limit, and a crash
between taking up a slot (or starting it on the ledger) and finishing it: no duplicate, no loss.
Every store test runs on SQLite and on PostgreSQL (when ``make test`` provides it)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from confide.crypto import Identity
from confide.crypto.httpsig import verify_request
from confide.ledger.contract.schedule import Schedule, slots_between, zone
from confide.node.scheduler import Job, ManualClock, Scheduler, SchedulerStore
from confide.node.scheduler.notify import PeerDown, Webhooks, wait_for_peers

MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000


def _ms(y: int, mo: int, d: int, h: int = 0, mi: int = 0, sec: int = 0, tz: str = "Asia/Shanghai") -> int:
    return int(datetime(y, mo, d, h, mi, sec, tzinfo=zone(tz)).astimezone(UTC).timestamp() * 1000)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'node.sqlite'}"
    pg = os.environ.get("CONFIDE_TEST_PG_URL")
    if not pg:
        if os.environ.get("CI"):
            pytest.fail("CONFIDE_TEST_PG_URL is not set: CI runs the store tests on PostgreSQL too")
        pytest.skip('no PostgreSQL test server: run eval "$(scripts/test-postgres.sh)"')
    import psycopg

    name = f"sched_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{pg.rpartition('/')[0]}/{name}"


class FakeLedger:
    """Stands in for run.start: one run per (task, slot), a second start is refused."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, int], str] = {}
        self.lock = threading.Lock()
        self.starts = 0

    def start(self, job: Job) -> tuple[str, bool]:
        with self.lock:
            self.starts += 1
            key = (job.task, job.slot)
            if key in self.runs:
                return self.runs[key], False  # ALREADY_EXISTS: the executor adopts that run
            self.runs[key] = f"run-{job.task}-{job.slot}"
            return self.runs[key], True


def _executor(ledger: FakeLedger, store: SchedulerStore) -> Callable[[Job], str | None]:
    def execute(job: Job) -> str | None:
        run, _new = ledger.start(job)
        store.mark(job.task, job.slot, "started", run=run)
        return run

    return execute


def _drain(s: Scheduler, store: SchedulerStore, timeout: float = 20.0) -> None:
    """Wait (real time, briefly) until the run queue finished what the ticks queued."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if s.queue.depth() == 0 and s.queue.running == 0 and not store.open_slots():
            return
        time.sleep(0.005)
    raise AssertionError(f"queue did not drain: {store.open_slots()[:3]}")


@pytest.fixture
def world(url: str) -> Iterator[tuple[SchedulerStore, ManualClock, FakeLedger]]:
    store = SchedulerStore(url)
    yield store, ManualClock(_ms(2026, 11, 30)), FakeLedger()  # a Monday, 00:00 in Shanghai
    store.close()


def test_a_cron_task_runs_exactly_at_its_slots_across_a_day(world: tuple) -> None:
    store, clock, ledger = world
    s = Scheduler(store, clock, _executor(ledger, store), workers=2)
    s.queue.start()
    sched = {"kind": "cron", "cron": "*/15 9-17 * * 1-5", "tz": "Asia/Shanghai"}
    start = clock.now_ms()
    assert s.add("t-cron", sched, start)
    for _ in range(24 * 60):  # one tick a minute, on the minute, for a day
        s.tick()
        clock.advance(MIN)
    _drain(s, store)
    s.stop()
    want = slots_between(Schedule.model_validate(sched), start - 1, start + DAY)
    assert len(want) == 36 and want[0] == _ms(2026, 11, 30, 9) and want[-1] == _ms(2026, 11, 30, 17, 45)
    assert sorted(slot for _, slot in ledger.runs) == want and ledger.starts == 36
    assert s.lateness == [0] * 36  # each queued at its minute
    assert all(r["state"] == "done" and r["run"] for r in store.slots("t-cron"))


def test_a_point_in_time_task_runs_once(world: tuple) -> None:
    store, clock, ledger = world
    s = Scheduler(store, clock, _executor(ledger, store))
    s.queue.start()
    at = clock.now_ms() + 90 * MIN
    s.add("t-at", {"kind": "at", "at": at}, clock.now_ms())
    for _ in range(300):
        s.tick()
        clock.advance(MIN)
    _drain(s, store)
    s.stop()
    assert list(ledger.runs) == [("t-at", at)]
    assert store.active_tasks() == []  # no slot left: the task ended here


@pytest.mark.parametrize(("policy", "expect_catch_up"), [("run_once", True), ("skip", False)])
def test_missed_runs_follow_the_tasks_policy(world: tuple, policy: str, expect_catch_up: bool) -> None:
    store, clock, ledger = world
    s = Scheduler(store, clock, _executor(ledger, store))
    s.queue.start()
    sched = {"kind": "cron", "cron": "0 * * * *", "tz": "Asia/Shanghai", "missed": policy}
    s.add("t-hourly", sched, clock.now_ms())
    clock.set(_ms(2026, 11, 30, 9, 59))
    s.tick()  # 09:00 and before: missed while "down" too; only the policy says what happens
    _drain(s, store)
    first = dict(ledger.runs)
    clock.set(_ms(2026, 11, 30, 12, 30))  # down from 09:59 to 12:30: 10:00, 11:00, 12:00 missed
    s.tick()
    clock.set(_ms(2026, 11, 30, 13, 0, 20))  # back: 13:00 on time
    s.tick()
    _drain(s, store)
    s.stop()
    runs = sorted(slot for _, slot in ledger.runs)
    on_time = _ms(2026, 11, 30, 13)
    if expect_catch_up:
        assert runs == sorted([*[sl for _, sl in first], _ms(2026, 11, 30, 12), on_time])
        assert len(first) == 1  # one catch-up for the 10 missed slots before 09:59 too
    else:
        assert runs == [on_time] and not first
    states = {r["slot"]: r["state"] for r in store.slots("t-hourly")}
    assert states[_ms(2026, 11, 30, 10)] == states[_ms(2026, 11, 30, 11)] == "skipped"


def test_a_crash_after_taking_up_or_starting_a_slot_neither_duplicates_nor_loses_it(world: tuple) -> None:
    store, clock, ledger = world
    # process A takes up 09:00 and 10:00 (queued), then dies before its workers run anything
    a = Scheduler(store, clock, _executor(ledger, store))
    a.add("t", {"kind": "cron", "cron": "0 9,10 * * *", "tz": "Asia/Shanghai"}, clock.now_ms())
    clock.set(_ms(2026, 11, 30, 9))
    assert a.tick() == 1
    # ... and 10:00 is started on the ledger, but the process dies before recording it
    clock.set(_ms(2026, 11, 30, 10))
    assert a.tick() == 1
    ledger.start(Job("t", _ms(2026, 11, 30, 10)))
    # process B, same database: both slots come back, each runs (or is adopted) exactly once
    b = Scheduler(store, clock, _executor(ledger, store))
    assert b.recover() == 2
    b.queue.start()
    assert b.tick() == 0  # nothing new is due: no slot taken up twice
    _drain(b, store)
    b.stop()
    assert sorted(slot for _, slot in ledger.runs) == [_ms(2026, 11, 30, 9), _ms(2026, 11, 30, 10)]
    assert all(r["state"] == "done" for r in store.slots("t"))
    assert store.slot("t", _ms(2026, 11, 30, 10))["run"] == ledger.runs[("t", _ms(2026, 11, 30, 10))]


def test_schedules_survive_a_restart(url: str) -> None:
    clock = ManualClock(_ms(2026, 11, 30))
    store = SchedulerStore(url)
    Scheduler(store, clock, lambda job: None).add("t", {"kind": "cron", "cron": "0 3 * * *"}, clock.now_ms())
    store.close()
    again = SchedulerStore(url)
    (task,) = again.active_tasks()
    assert task["task"] == "t" and task["next_slot"] == _ms(2026, 11, 30, 3, tz="UTC")
    again.close()


def test_priorities_and_the_concurrency_limit(url: str) -> None:
    store = SchedulerStore(url)
    clock = ManualClock(_ms(2026, 11, 30))
    order: list[str] = []
    gate = threading.Event()
    busy, peak, lock = [0], [0], threading.Lock()

    def execute(job: Job) -> str | None:
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        gate.wait(10)
        with lock:
            busy[0] -= 1
            order.append(job.task)
        return None

    s = Scheduler(store, clock, execute, workers=2)
    at = clock.now_ms() + MIN
    for name, prio in (("low", 1), ("mid", 5), ("high", 9), ("mid2", 5), ("top", 9)):
        s.add(name, {"kind": "at", "at": at, "priority": prio}, clock.now_ms())
    clock.set(at)
    assert s.tick() == 5
    s.queue.start()
    time.sleep(0.1)
    gate.set()
    _drain(s, store)
    s.stop()
    assert peak[0] == 2  # never more than the node's limit at once
    assert set(order[:2]) == {"high", "top"} and order[-1] == "low"
    store.close()


def test_a_failing_job_is_recorded_with_its_reason(world: tuple) -> None:
    store, clock, _ = world

    def boom(job: Job) -> str | None:
        raise RuntimeError("peer down")

    s = Scheduler(store, clock, boom)
    s.queue.start()
    s.add("t", {"kind": "at", "at": clock.now_ms() + MIN}, clock.now_ms())
    clock.advance(MIN)
    s.tick()
    _drain(s, store)
    s.stop()
    (row,) = store.slots("t")
    assert row["state"] == "failed" and "peer down" in row["error"]


# -- waiting for peers, webhooks -----------------------------------------------------------------------


def test_a_down_peer_is_waited_for_with_backoff_then_the_slot_fails_naming_it() -> None:
    waits: list[int] = []

    class Recording(ManualClock):
        def wait(self, event: threading.Event, ms: int) -> bool:
            waits.append(ms)
            return False

    asked = {"power": 0}

    def probe(org: str) -> str | None:  # power's node answers from its 4th health check on
        if org != "power":
            return None
        asked["power"] += 1
        return "unreachable (ConnectError)" if asked["power"] < 4 else None

    said: list[str] = []
    assert wait_for_peers(probe, ["power", "tax"], Recording(0), threading.Event(), on_wait=said.append) == 4
    assert waits == [1000, 2000, 4000] and len(said) == 3 and "power's node: unreachable" in said[0]

    asked["power"], waits[:] = -100, []
    with pytest.raises(PeerDown, match="PEER_DOWN: after 3 tries, power's node: unreachable"):
        wait_for_peers(probe, ["power"], Recording(0), threading.Event(), tries=3)
    assert waits == [1000, 2000]  # and then it gave up: no run.start


def test_webhooks_are_signed_json_from_a_persistent_outbox_retried_with_backoff(tmp_path: Path) -> None:
    got: list[tuple[dict[str, str], bytes]] = []
    fail_first = [True]

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if fail_first[0]:
                fail_first[0] = False
                self.send_response(503)
            else:
                got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/confide/events"
    dead = "http://127.0.0.1:9/nobody"  # nothing listens: given up after `tries`
    node, clock = Identity.generate(), ManualClock(1_000_000)
    event = {"event": "run.failed", "id": "tx:run.failed", "task": "t", "slot": 5, "reason": "PEER_DOWN: x"}
    store = SchedulerStore(f"sqlite:///{tmp_path / 'node.sqlite'}")
    hooks = Webhooks([url, dead], node, store, clock, tries=3)
    try:
        hooks.notify(event, cursor=("webhooks_height", 7))
        assert store.get_meta("webhooks_height") == 7
        hooks.close()  # the node stops before delivering: the outbox keeps both
        store.close()
        store = SchedulerStore(f"sqlite:///{tmp_path / 'node.sqlite'}")  # restarted
        hooks = Webhooks([url, dead], node, store, clock, tries=3)
        assert hooks.deliver_due() == 0  # the receiver answered 503, the dead URL nothing
        assert hooks.deliver_due() == 0  # not due again yet: backoff (1 s)
        clock.advance(1_000)
        assert hooks.deliver_due() == 1  # the receiver now; the dead URL's 2nd try
        clock.advance(2_000)
        hooks.deliver_due()  # the dead URL's 3rd and last try
        states = {r["url"]: (r["state"], r["attempts"]) for r in store.deliveries()}
        assert states == {url: ("delivered", 2), dead: ("failed", 3)}
    finally:
        hooks.close()
        store.close()
        server.shutdown()
    ((headers, body),) = got  # the 503 was retried once
    assert json.loads(body) == event

    class Nonces:
        def check_and_add(self, nonce: str, now: int) -> bool:
            return True

    signed = verify_request(
        headers,
        "POST",
        "/confide/events",
        "",
        body,
        lookup_key=lambda key_id: node.public_key if key_id == node.key_id else None,
        nonces=Nonces(),
    )
    assert signed.key_id == node.key_id


def test_a_cancelled_task_takes_up_no_further_slot(world: tuple) -> None:
    store, clock, ledger = world
    s = Scheduler(store, clock, _executor(ledger, store))
    s.queue.start()
    s.add("t", {"kind": "cron", "cron": "*/10 * * * *"}, clock.now_ms())
    clock.advance(10 * MIN)
    s.tick()
    _drain(s, store)
    before = len(ledger.runs)
    assert before >= 1
    s.cancel("t")
    s.cancel("t")  # again: nothing changes
    for _ in range(6):
        clock.advance(10 * MIN)
        s.tick()
    _drain(s, store)
    s.stop()
    assert len(ledger.runs) == before and store.active_tasks() == []


def test_a_slot_cancelled_before_it_is_due_or_while_queued_never_starts_a_run(world: tuple) -> None:
    store, clock, ledger = world

    def execute(job: Job) -> str | None:  # as NodeScheduler does: claim the slot, then run.start
        if not store.mark(job.task, job.slot, "starting", only_from=("queued", "waiting")):
            return None  # cancelled meanwhile
        run, _new = ledger.start(job)
        store.mark(job.task, job.slot, "started", run=run)
        return run

    s = Scheduler(store, clock, execute)
    t0 = clock.now_ms()
    s.add("t", {"kind": "cron", "cron": "*/10 * * * *"}, t0 + 1)  # first slot: t0 + 10 min
    # not yet due: recorded cancelled, so the scheduler never takes it up
    assert store.cancel_slot("t", t0 + 20 * MIN, 5, t0) == "cancelled"
    clock.advance(10 * MIN)
    assert s.tick() == 1  # slot 1 queued, workers not started yet
    assert store.cancel_slot("t", t0 + 10 * MIN, 5, clock.now_ms()) == "cancelled"  # while queued
    s.queue.start()
    _drain(s, store)
    for _ in range(2):
        clock.advance(10 * MIN)
        s.tick()
        _drain(s, store)
    s.stop()
    by_slot = {int(r["slot"]): r for r in store.slots("t")}
    assert [by_slot[t0 + k * MIN]["state"] for k in (10, 20, 30)] == ["cancelled", "cancelled", "done"]
    assert set(ledger.runs) == {("t", t0 + 30 * MIN)}  # only the slot not cancelled ran
    # a slot whose run started can no longer be cancelled here (its run is cancelled on the ledger)
    assert store.cancel_slot("t", t0 + 30 * MIN, 5, clock.now_ms()) == "done"


def test_a_file_clock_read_while_rewritten_keeps_its_last_time(tmp_path: Path) -> None:
    from confide.node.scheduler.clock import FileClock

    path = tmp_path / "clock"
    clock = FileClock(path)
    with pytest.raises(RuntimeError, match="no time in it"):
        clock.now_ms()  # never read: fail clearly
    path.write_text("1000")
    assert clock.now_ms() == 1000
    path.write_text("")  # a writer truncated it and has not written yet
    assert clock.now_ms() == 1000
    path.write_text("2000")
    assert clock.now_ms() == 2000
