"""The scheduler's clock: the wall clock in a node, a hand-moved one in tests (no sleeping).

A node started with ``CONFIDE_SCHEDULER_CLOCK_FILE`` set reads its scheduler's time from that file
(:class:`FileClock`), so a test can move a running node's scheduler to a slot without waiting for
it. It moves only *when* the node's scheduler acts: the ledger still judges every ``run.start`` by
block time (a slot at most 5 minutes early, once), so a node can be early, never wrong.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Protocol

__all__ = ["Clock", "FileClock", "ManualClock", "SystemClock", "node_clock"]

CLOCK_FILE_ENV = "CONFIDE_SCHEDULER_CLOCK_FILE"
log = logging.getLogger("confide.node.scheduler")


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def wait(self, event: threading.Event, ms: int) -> bool:
        """Wait until ``event`` is set or ``ms`` passed on this clock; True if the event was set."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def wait(self, event: threading.Event, ms: int) -> bool:
        return event.wait(max(ms, 0) / 1000)


class ManualClock:
    """Time moves only when a test calls ``advance`` / ``set``; ``wait`` returns at once."""

    def __init__(self, now_ms: int) -> None:
        self._now = now_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def set(self, now_ms: int) -> None:
        with self._lock:
            self._now = now_ms

    def advance(self, ms: int) -> None:
        with self._lock:
            self._now += ms

    def wait(self, event: threading.Event, ms: int) -> bool:
        return event.is_set()


class FileClock:
    """Now is the UTC ms written in ``path`` (by a test in another process); ``wait`` polls it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: int | None = None

    def now_ms(self) -> int:
        """The file's time; while it is being rewritten (empty or partial), the last time read."""
        try:
            self._last = int(self.path.read_text().strip())
        except (OSError, ValueError) as exc:
            if self._last is None:
                raise RuntimeError(f"{CLOCK_FILE_ENV}={self.path}: no time in it ({exc})") from None
        return self._last

    def wait(self, event: threading.Event, ms: int) -> bool:
        return event.wait(min(max(ms, 0), 50) / 1000)


def node_clock() -> Clock:
    """The wall clock, or the test clock named by ``CONFIDE_SCHEDULER_CLOCK_FILE`` (logged loudly)."""
    path = os.environ.get(CLOCK_FILE_ENV)
    if not path:
        return SystemClock()
    log.warning("the scheduler's clock is read from %s (%s): a test setting", path, CLOCK_FILE_ENV)
    return FileClock(Path(path))
