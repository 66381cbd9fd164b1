"""The scheduler's clock: the wall clock in a node, a hand-moved one in tests (no sleeping)."""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


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
