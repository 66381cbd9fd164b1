"""``confide bench scheduler --tasks N``: N tasks (a no-op engine) due in the same minute on one node.

The scheduler runs as in a node: its store in an SQLite file (WAL, synchronous=FULL), the system
clock, a run queue of 2 workers executing a no-op. Meanwhile a reader calls a read API over HTTP
(FastAPI + uvicorn in this process, as a node serves its API: ``GET /slots/{task}``, which reads the
scheduler's store) as fast as it can. Figures (the last line, JSON):

- ``dispatch_p50_ms`` / ``dispatch_p99_ms``: per task, how late its job entered the run queue
  against its slot (target p99 <= 1000);
- ``api_p99_ms``: the read call's latency while the slot fires (from 1 s before the slot until
  every job ran; target <= 100), and ``api_idle_p99_ms``, the same call before, the baseline.

Not yet the node's own API process: the scheduler is not wired into the node (see docs).
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from fastapi import FastAPI

from .clock import SystemClock
from .scheduler import Job, Scheduler
from .store import SchedulerStore

__all__ = ["run_scheduler_bench"]

MIN_LEAD_MS = 8_000


def _app(store: SchedulerStore) -> FastAPI:
    app = FastAPI()

    @app.get("/slots/{task}")
    def slots(task: str) -> list[dict[str, Any]]:
        return store.slots(task)

    return app


@contextlib.contextmanager
def _serve(app: FastAPI) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield url
    finally:
        server.should_exit = True
        th.join(timeout=5)


def _pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(xs, dtype=np.float64), q)), 2) if xs else float("nan")


def run_scheduler_bench(
    tasks: int, log: Callable[[str], None] = print, lead_s: float | None = None
) -> dict[str, Any]:
    """``lead_s``: the slot is that far ahead (tests); default: the next minute at least 8 s away."""
    with tempfile.TemporaryDirectory(prefix="confide-bench-sched-") as tmp:
        store = SchedulerStore(f"sqlite:///{Path(tmp) / 'node.sqlite'}")
        clock = SystemClock()
        now = clock.now_ms()
        slot = (now + MIN_LEAD_MS) - (now + MIN_LEAD_MS) % 60_000 + 60_000
        if slot - now > 60_000 + MIN_LEAD_MS:
            slot -= 60_000
        if lead_s is not None:
            slot = now + int(lead_s * 1000)
        ran = threading.Event()
        done = [0]
        lock = threading.Lock()

        def noop(job: Job) -> str | None:
            with lock:
                done[0] += 1
                if done[0] == tasks:
                    ran.set()
            return None

        sched = Scheduler(store, clock, noop, workers=2)
        t0 = time.perf_counter()
        schedule: dict[str, Any] = {"kind": "at", "at": slot, "tz": "UTC", "missed": "run_once"}
        rows: list[tuple[str, dict[str, Any], int | None]] = [
            (f"bench-{i:06d}", schedule, slot) for i in range(tasks)
        ]
        store.add_tasks(rows, now)
        due = time.strftime("%H:%M:%S", time.gmtime(slot / 1000))
        log(f"{tasks:,} tasks scheduled for {due} UTC in {time.perf_counter() - t0:.1f} s")
        idle: list[float] = []
        busy: list[float] = []
        with _serve(_app(store)) as url, httpx.Client(base_url=url, timeout=10) as http:
            sched.start()
            stop = threading.Event()

            def reader() -> None:
                i = 0
                while not stop.is_set():
                    t = time.perf_counter()
                    http.get(f"/slots/bench-{i % tasks:06d}").raise_for_status()
                    ms = (time.perf_counter() - t) * 1000
                    (busy if clock.now_ms() >= slot - 1000 else idle).append(ms)
                    i += 7919
                    time.sleep(0.005)

            th = threading.Thread(target=reader, daemon=True)
            th.start()
            last = 0.0
            while not ran.wait(0.5):
                if time.monotonic() - last > 2:
                    last = time.monotonic()
                    left = (slot - clock.now_ms()) / 1000
                    when = f"due in {left:.0f} s" if left > 0 else "firing"
                    log(f"  {when}: {done[0]:,}/{tasks:,} jobs ran, queue {sched.queue.depth():,}")
                if clock.now_ms() > slot + 120_000:
                    break
            stop.set()
            th.join(timeout=5)
            sched.stop()
        lateness = list(map(float, sched.lateness))
        store.close()
    return {
        "tasks": tasks,
        "dispatched": len(lateness),
        "ran": done[0],
        "dispatch_p50_ms": _pct(lateness, 50),
        "dispatch_p99_ms": _pct(lateness, 99),
        "api_p99_ms": _pct(busy, 99),
        "api_idle_p99_ms": _pct(idle, 99),
        "api_calls": len(busy),
    }
