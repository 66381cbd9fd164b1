"""Scheduled tasks on the ledger: the schedule is validated, every run names a slot of it, the
requester org's node may start it, and no slot ever gets a second run (what keeps a scheduler that
crashed after submitting from running a slot twice)."""

from __future__ import annotations

import itertools

import pytest

from confide.crypto import Identity
from confide.ledger import Code
from confide.ledger.contract.schedule import MINUTE_MS, Schedule, is_slot, next_slot, slots_between
from factories import ATTESTATION, DAY, Consortium, digest

HOUR = 3_600_000


@pytest.fixture
def c() -> Consortium:
    return Consortium.create()


def _node(c: Consortium, org: str) -> Identity:
    node = Identity.generate()
    c.send(
        c.admins[org], "member.add", {"public_key": node.public_hex, "name": f"{org} node", "roles": ["node"]}
    )
    return node


def _task(ds: str, app: str, schedule: object) -> dict:
    return {
        "engine": "tee",
        "inputs": [{"dataset": ds, "grant": app, "columns": ["credit_code"]}],
        "code_digest": digest("score.sql"),
        "code": "score.sql",
        "params": {},
        "schedule": schedule,
    }


def _start(task: str, slot: int | None) -> dict:
    out: dict = {"attestation": ATTESTATION, "task": task, "input_digests": [digest("filings v1")]}
    if slot is not None:
        out["slot"] = slot
    return out


# -- the schedule itself -------------------------------------------------------------------------


def test_cron_slots_follow_the_zone_and_its_daylight_saving() -> None:
    shanghai = Schedule(kind="cron", cron="0 2 * * *", tz="Asia/Shanghai")
    t0 = 1_767_225_600_000  # 2026-01-01T00:00Z = 08:00 in Shanghai
    first = next_slot(shanghai, t0)
    assert first == t0 + 18 * HOUR  # 02:00 on Jan 2 in Shanghai is 18:00Z on Jan 1
    assert slots_between(shanghai, t0, t0 + 3 * DAY) == [first, first + DAY, first + 2 * DAY]
    # Berlin leaves daylight saving on 2026-10-25: 03:00 CEST becomes 02:00 CET, the day has 25 hours
    berlin = Schedule(kind="cron", cron="0 9 * * *", tz="Europe/Berlin")
    oct24 = 1_793_000_000_000 - 1_793_000_000_000 % DAY  # some day around then, midnight UTC
    slots = slots_between(berlin, oct24 - 10 * DAY, oct24 + 10 * DAY)
    gaps = {b - a for a, b in itertools.pairwise(slots)}
    assert gaps == {DAY, DAY + HOUR}  # one day is an hour longer, and 09:00 local stays 09:00
    assert all(is_slot(berlin, s) for s in slots) and not is_slot(berlin, slots[0] + MINUTE_MS)


def test_point_in_time_has_one_slot() -> None:
    at = Schedule(kind="at", at=5 * MINUTE_MS)
    assert next_slot(at, 0) == 5 * MINUTE_MS and next_slot(at, 5 * MINUTE_MS) is None
    assert slots_between(at, 0, DAY) == [5 * MINUTE_MS]


@pytest.mark.parametrize(
    ("schedule", "match"),
    [
        ({"kind": "cron", "cron": "61 * * * *"}, "cron"),
        ({"kind": "cron", "cron": "* * * * * *"}, "5-field"),
        ({"kind": "cron", "cron": "0 2 * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"kind": "cron", "cron": "0 2 * * *", "tz": "../../etc/passwd"}, "IANA"),
        ({"kind": "at"}, "at"),
        ({"kind": "at", "at": 5, "cron": "0 2 * * *"}, "cron"),
        ({"kind": "cron", "cron": "0 2 * * *", "missed": "sometimes"}, "missed"),
        ({"kind": "cron", "cron": "0 2 * * *", "priority": 10}, "priority"),
    ],
)
def test_bad_schedules_are_refused(c: Consortium, schedule: dict, match: str) -> None:
    ds, app = c.grant()
    err = c.refused(c.analyst, "task.submit", _task(ds, app, schedule))
    assert Code(err.code) is Code.MALFORMED and match in err.reason


# -- runs of a scheduled task ----------------------------------------------------------------------


def test_each_slot_runs_once_started_by_the_requesters_node(c: Consortium) -> None:
    ds, app = c.grant(max_uses=20)
    node, other_node = _node(c, "bank"), _node(c, "tax")
    sched = {"kind": "cron", "cron": "*/15 * * * *", "tz": "Asia/Shanghai", "missed": "skip", "priority": 7}
    task = c.send(c.analyst, "task.submit", _task(ds, app, sched)).tx_id
    stored = c.query(f"task/{task}")["schedule"]
    assert stored["cron"] == "*/15 * * * *" and stored["missed"] == "skip" and stored["priority"] == 7
    slot = next_slot(Schedule.model_validate(sched), c.clock.now)
    assert slot is not None
    c.clock.now = slot + 2_000

    assert Code(c.refused(node, "run.start", _start(task, None)).code) is Code.MALFORMED  # no slot
    assert Code(c.refused(node, "run.start", _start(task, slot + MINUTE_MS)).code) is Code.OUT_OF_SCOPE
    later = next_slot(Schedule.model_validate(sched), slot + 30 * MINUTE_MS)
    assert Code(c.refused(node, "run.start", _start(task, later)).code) is Code.OUT_OF_SCOPE  # not due
    assert Code(c.refused(other_node, "run.start", _start(task, slot)).code) is Code.FORBIDDEN

    run = c.send(node, "run.start", _start(task, slot)).tx_id
    assert c.query(f"run/{run}")["slot"] == slot and c.query(f"run/{run}")["started_by"] == node.key_id
    for who in (node, c.analyst):  # the same slot again, whoever asks: refused
        assert Code(c.refused(who, "run.start", _start(task, slot)).code) is Code.ALREADY_EXISTS
    c.clock.now += 15 * MINUTE_MS
    by_hand = c.send(c.analyst, "run.start", _start(task, slot + 15 * MINUTE_MS)).tx_id  # the requester too
    assert len(c.query(f"task/{task}")["runs"]) == 2
    # the node that started a slot's run reports it; another org's node may not, nor may it finish
    # a run the requester started by hand
    failed = {"run": run, "status": "failed", "reason": "peer down"}
    assert Code(c.refused(other_node, "run.finish", failed).code) is Code.FORBIDDEN
    assert Code(c.refused(node, "run.finish", {**failed, "run": by_hand}).code) is Code.FORBIDDEN
    c.send(node, "run.finish", failed)
    assert c.query(f"run/{run}")["status"] == "failed"


def test_a_point_in_time_task_runs_once_and_a_now_task_takes_no_slot(c: Consortium) -> None:
    ds, app = c.grant(max_uses=20)
    node = _node(c, "bank")
    at = c.clock.now + HOUR - c.clock.now % MINUTE_MS
    task = c.send(c.analyst, "task.submit", _task(ds, app, {"kind": "at", "at": at})).tx_id
    assert Code(c.refused(node, "run.start", _start(task, at)).code) is Code.OUT_OF_SCOPE  # an hour early
    c.clock.now = at
    c.send(node, "run.start", _start(task, at))
    assert Code(c.refused(node, "run.start", _start(task, at)).code) is Code.ALREADY_EXISTS

    now_task = c.send(c.analyst, "task.submit", _task(ds, app, "now")).tx_id
    assert Code(c.refused(c.analyst, "run.start", _start(now_task, at)).code) is Code.MALFORMED
    assert Code(c.refused(node, "run.start", _start(now_task, None)).code) is Code.FORBIDDEN
    c.send(c.analyst, "run.start", _start(now_task, None))


def test_a_grant_revoked_between_two_slots_stops_the_second(c: Consortium) -> None:
    ds, app = c.grant(max_uses=20)
    node = _node(c, "bank")
    sched = {"kind": "cron", "cron": "0 * * * *", "tz": "UTC"}
    task = c.send(c.analyst, "task.submit", _task(ds, app, sched)).tx_id
    first = next_slot(Schedule.model_validate(sched), c.clock.now)
    assert first is not None
    c.clock.now = first
    c.send(node, "run.start", _start(task, first))
    c.send(c.owners["tax"], "application.revoke", {"application": app, "reason": "contract ended"})
    c.clock.now = first + HOUR
    assert Code(c.refused(node, "run.start", _start(task, first + HOUR)).code) is Code.REVOKED
    assert len(c.query(f"task/{task}")["runs"]) == 1


def test_a_run_is_cancelled_by_its_requester_and_opens_no_release(c: Consortium) -> None:
    ds, app = c.grant(max_uses=20)
    task = c.send(c.analyst, "task.submit", _task(ds, app, "now")).tx_id
    run = c.send(c.analyst, "run.start", _start(task, None)).tx_id
    cancel = {"run": run, "status": "cancelled", "reason": "called off"}
    assert Code(c.refused(_node(c, "bank"), "run.finish", cancel).code) is Code.FORBIDDEN  # not its run
    c.send(c.analyst, "run.finish", cancel)
    assert c.query(f"run/{run}")["status"] == "cancelled"
    with pytest.raises(LookupError):
        c.query(f"release/{run}")
    assert Code(c.refused(c.analyst, "run.finish", cancel).code) is Code.INVALID_STATE  # once
    bad = {"run": run, "status": "cancelled", "output_digest": digest("x")}
    assert Code(c.refused(c.analyst, "run.finish", bad).code) is Code.MALFORMED
