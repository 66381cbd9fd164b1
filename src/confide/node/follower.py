"""Follow the chain: fetch blocks from the ordering service, verify, apply.

Runs in a thread of the node. Every block goes through the node's own
:class:`Replica` (orderer signature, hash link, Merkle root, every tx
signature, contract replay). If a block fails verification the follower halts
and the node fails closed (its API refuses to serve) until an operator acts.
An unreachable orderer is retried with backoff; a node that was down catches up
on restart from its own last height.
"""

from __future__ import annotations

import logging
import threading
import time

from ..ledger.backend import LedgerBackend
from ..ledger.embedded import Replica
from ..ledger.errors import ChainCorrupted, LedgerError

__all__ = ["Follower"]

log = logging.getLogger("confide.node.follower")


class Follower:
    def __init__(self, replica: Replica, remote: LedgerBackend, lock: threading.RLock, poll_s: float) -> None:
        self.replica = replica
        self.remote = remote
        self.lock = lock
        self.poll_s = poll_s
        self.halted: str | None = None
        self.last_error: str | None = None
        self.applied = threading.Condition()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def nudge(self) -> None:
        """Fetch now (a tx was just committed) instead of waiting for the next poll."""
        self._wake.set()

    @property
    def height(self) -> int:
        return self.replica.height

    def step(self) -> int:
        """Fetch and apply one batch; returns how many blocks were applied."""
        blocks = self.remote.blocks_since(self.replica.height, 200)
        for block in blocks:
            with self.lock:
                self.replica.apply_block(block)
            with self.applied:
                self.applied.notify_all()
        return len(blocks)

    def _run(self) -> None:
        backoff = self.poll_s
        while not self._stop.is_set():
            try:
                n = self.step()
                self.last_error = None
                backoff = self.poll_s
                if n >= 200:
                    log.info("catching up: at height %d", self.replica.height)
                    continue
            except ChainCorrupted as exc:
                self.halted = str(exc)
                log.error("chain verification failed, node halted (fail closed): %s", exc)
                with self.applied:
                    self.applied.notify_all()
                return
            except LedgerError as exc:
                self.last_error = str(exc)
                backoff = min(backoff * 2, 5.0)
                log.warning("%s; retrying in %.1fs", exc, backoff)
            self._wake.wait(backoff)
            self._wake.clear()

    def wait_for(self, height: int, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.applied:
            while self.replica.height < height and self.halted is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.applied.wait(min(left, self.poll_s))
        return self.replica.height >= height
