"""The ``etcd`` ledger backend: replicated ordering without a single orderer.

An etcd cluster — one member per org, as Fabric's Raft orderer builds on etcd's Raft library — keeps
the ordered log of signed txs (``etcd.log``); every node derives the same blocks from it
(``ledger.derived``). With 2f + 1 members the log, and so the ledger, keeps committing while f are
down; a member that comes back catches up through Raft; no two nodes ever derive different blocks at
the same height, because they read one linearizable log. Raft tolerates crashes, not lies: a member
that misbehaves (or a node that appends garbage) cannot make nodes disagree, but byzantine fault
tolerance comes from the external chains (ChainMaker's TBFT, Fabric's BFT orderer). A batch's time
is the appender's clock (kept monotonic by the deriver), as the embedded orderer's clock is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from ...crypto import Identity
from ..derived import LogBackend, LogNodeLedger
from ..embedded.replica import Replica
from ..errors import LedgerError
from ..genesis import Genesis
from ..ordered_log import Cursor, split_batches
from .log import MAX_BATCH_BYTES, EtcdLog, EtcdReader, now_ms

__all__ = ["EtcdBackend", "EtcdNodeLedger", "EtcdSource"]


class EtcdSource:
    """``clock``: the appender's clock (ms), which stamps each batch (the wall clock by default)."""

    def __init__(self, log: EtcdLog, clock: Callable[[], int] = now_ms) -> None:
        self.log, self.clock = log, clock

    def genesis_anchor(self) -> str:
        return "etcd:" + self.log.prefix.decode()

    def reader(self, cursor: Cursor) -> EtcdReader:
        return EtcdReader(self.log, cursor)

    def now_ms(self) -> int:
        return self.clock()

    def tip(self) -> int:
        return self.log.head()

    def split(self, entries: Sequence[bytes], max_count: int) -> list[list[bytes]]:
        return split_batches(entries, max_count, MAX_BATCH_BYTES, "an etcd")

    def append(self, batch: Sequence[bytes]) -> None:
        self.log.append(batch, self.clock())


def _open(genesis: Genesis, endpoints: Sequence[str]) -> EtcdLog:
    if genesis.ledger.backend != "etcd":
        raise LedgerError(f"this consortium's genesis names the {genesis.ledger.backend} ledger, not etcd")
    return EtcdLog(endpoints, f"{genesis.chain_id}/{genesis.digest()[:32]}")


class EtcdBackend(LogBackend):
    """A whole ``etcd`` chain view in one process (tools, tests): its own store."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        orderer_identity: Identity,
        endpoints: Sequence[str],
        path: str | Path = ":memory:",
        timeout_s: float = 60.0,
        clock: Callable[[], int] = now_ms,  # stamps the batches this process appends
    ) -> None:
        self.log = _open(genesis, endpoints)
        super().__init__(genesis, EtcdSource(self.log, clock), orderer_identity, path, timeout_s)


class EtcdNodeLedger(LogNodeLedger):
    """An org node's link to the etcd log (see ``LogNodeLedger``)."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        identity: Identity,
        replica: Replica,
        lock: threading.RLock,
        endpoints: Sequence[str],
        timeout_s: float = 60.0,
    ) -> None:
        self.log = _open(genesis, endpoints)
        super().__init__(genesis, EtcdSource(self.log), identity, replica, lock, timeout_s)
