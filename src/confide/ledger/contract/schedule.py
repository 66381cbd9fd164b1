"""When a task runs: ``now`` (runs started by hand), a point in time, or a cron expression in a time
zone. Shared by the contract (is this a slot of the task? has it run?) and the node's scheduler
(which slots are due?), so both compute the same slots.

- A **slot** is a UTC instant in milliseconds: ``at`` itself, or a minute at which the 5-field cron
  expression matches in the schedule's zone (``croniter``; DST follows the zone's rules).
- Zones come from the pinned ``tzdata`` package, never the host's ``/usr/share/zoneinfo``: every
  node evaluates the same rules, so the contract stays deterministic across machines.
- ``missed``: what the scheduler does with slots that passed while its node was down: ``run_once``
  (one run, for the latest missed slot) or ``skip`` (none; the next future slot runs).
- ``priority``: 0 (lowest) to 9 (highest) in the node's run queue.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["MINUTE_MS", "Schedule", "is_slot", "next_slot", "slots_between", "zone"]

MINUTE_MS = 60_000
_ZONE = re.compile(r"^(UTC|[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){1,2})$")


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` from the pinned tzdata package; ValueError if there is none."""
    if not _ZONE.fullmatch(name):
        raise ValueError(f"tz: {name!r} is not an IANA zone name")
    try:
        with resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).open("rb") as fh:
            return ZoneInfo.from_file(fh, key=name)
    except (OSError, ValueError):
        raise ValueError(f"tz: unknown time zone {name!r}") from None


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    kind: Literal["now", "at", "cron"]
    at: Annotated[int, Field(ge=0)] | None = None
    cron: Annotated[str, Field(min_length=9, max_length=100)] | None = None
    tz: Annotated[str, Field(min_length=3, max_length=64)] = "UTC"
    missed: Literal["run_once", "skip"] = "run_once"
    priority: Annotated[int, Field(ge=0, le=9)] = 5

    @model_validator(mode="after")
    def _fields(self) -> Schedule:
        if (self.kind == "at") != (self.at is not None):
            raise ValueError("at: a point-in-time schedule names 'at' (UTC ms), and only it does")
        if (self.kind == "cron") != (self.cron is not None):
            raise ValueError("cron: a cron schedule names 'cron', and only it does")
        if self.cron is not None and (len(self.cron.split()) != 5 or not croniter.is_valid(self.cron)):
            raise ValueError(
                f"cron: {self.cron!r} is not a 5-field cron expression (minute hour day month weekday)"
            )
        zone(self.tz)
        return self


def _local(ms: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz)


def is_slot(s: Schedule, ms: int) -> bool:
    """Is ``ms`` one of the schedule's slots?"""
    if s.kind == "at":
        return ms == s.at
    if s.kind != "cron" or ms % MINUTE_MS:
        return False
    assert s.cron is not None
    return bool(croniter.match(s.cron, _local(ms, zone(s.tz))))


def next_slot(s: Schedule, after_ms: int) -> int | None:
    """The first slot strictly after ``after_ms`` (None: there is none)."""
    if s.kind == "at":
        assert s.at is not None
        return s.at if s.at > after_ms else None
    if s.kind != "cron":
        return None
    assert s.cron is not None
    tz = zone(s.tz)
    start = _local(after_ms, tz)
    nxt: datetime = croniter(s.cron, start).get_next(datetime)
    ms = int(nxt.astimezone(UTC).timestamp() * 1000)
    if ms <= after_ms:  # croniter works on local wall time: step past a repeated DST hour
        nxt = croniter(s.cron, start + timedelta(hours=1)).get_next(datetime)
        ms = int(nxt.astimezone(UTC).timestamp() * 1000)
    return ms


def slots_between(s: Schedule, after_ms: int, until_ms: int, limit: int = 100_000) -> list[int]:
    """Slots in ``(after_ms, until_ms]``, in order (at most ``limit``)."""
    out: list[int] = []
    cur = after_ms
    while len(out) < limit:
        nxt = next_slot(s, cur)
        if nxt is None or nxt > until_ms:
            break
        out.append(nxt)
        cur = nxt
    return out
