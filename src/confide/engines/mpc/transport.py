"""In-process transport: each party (and the dealer) runs in its own thread and exchanges byte
messages through per-link queues. Used by tests and ``bench``; a node replaces it with HTTP and
drives ``program.PartyRunner`` the same way.

A party that does not deliver an awaited message within ``timeout`` seconds makes the waiting
party raise ``MpcTimeoutError``; when any party fails, the others stop at their next wait with
``MpcAbortedError`` and ``run_local`` raises the first failure. No call hangs: threads are
daemons and ``run_local`` returns or raises within about ``timeout`` of the last progress.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from .errors import MpcAbortedError, MpcError, MpcTimeoutError
from .program import PartyRunner, Program

_POLL = 0.02


class LocalNetwork:
    def __init__(self, ids: list[int], timeout: float) -> None:
        self.timeout = timeout
        self.queues: dict[tuple[int, int], queue.Queue[bytes]] = {
            (s, d): queue.Queue() for s in ids for d in ids if s != d
        }
        self.abort = threading.Event()
        self.errors: dict[int, BaseException] = {}
        self.lock = threading.Lock()
        self.bytes_sent = 0

    def send(self, src: int, dst: int, data: bytes) -> None:
        q = self.queues.get((src, dst))
        if q is None:
            raise MpcError(f"party {src} sent to unknown party {dst}")
        with self.lock:
            self.bytes_sent += len(data)
        q.put(data)

    def recv(self, src: int, dst: int) -> bytes:
        q = self.queues.get((src, dst))
        if q is None:
            raise MpcError(f"party {dst} waits for unknown party {src}")
        deadline = time.monotonic() + self.timeout
        while True:
            if self.abort.is_set():
                raise MpcAbortedError(f"party {dst}: session aborted by another party")
            left = deadline - time.monotonic()
            if left <= 0:
                raise MpcTimeoutError(f"party {dst}: no message from party {src} within {self.timeout:g} s")
            try:
                return q.get(timeout=min(_POLL, left))
            except queue.Empty:
                continue

    def fail(self, who: int, err: BaseException) -> None:
        with self.lock:
            self.errors.setdefault(who, err)
        self.abort.set()


def _run_party(net: LocalNetwork, me: int, program: Program[Any], results: dict[int, Any]) -> None:
    try:
        runner: PartyRunner[Any] = PartyRunner(program)
        rnd = runner.start()
        while rnd is not None:
            for dst, data in rnd.send.items():
                net.send(me, dst, data)
            inbound = {src: net.recv(src, me) for src in sorted(rnd.recv)}
            rnd = runner.step(inbound)
        results[me] = runner.result
    except BaseException as err:
        net.fail(me, err)


def run_local(programs: Mapping[int, Program[Any]], timeout: float = 30.0) -> dict[int, Any]:
    """Run one generator per party id until all return; returns ``{party: result}``."""
    net = LocalNetwork(sorted(programs), timeout)
    results: dict[int, Any] = {}
    threads = [
        threading.Thread(
            target=_run_party, args=(net, me, prog, results), daemon=True, name=f"mpc-party-{me}"
        )
        for me, prog in programs.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(_POLL)
            if net.abort.is_set():
                # give the others a moment to notice, then report the root cause
                deadline = time.monotonic() + 2 * _POLL + 1.0
                for other in threads:
                    other.join(max(0.0, deadline - time.monotonic()))
                break
        if net.abort.is_set():
            break
    if net.errors:
        root = _root_cause(net.errors)
        raise root
    missing = [p for p in programs if p not in results]
    if missing:
        raise MpcTimeoutError(f"parties {missing} did not finish")
    return results


def _root_cause(errors: dict[int, BaseException]) -> BaseException:
    """Prefer a real failure over the aborts it caused."""
    for err in errors.values():
        if not isinstance(err, MpcAbortedError):
            return err
    return next(iter(errors.values()))
