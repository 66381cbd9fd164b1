"""The ``fabric`` ledger backend: a Fabric channel orders the signed txs (the ``ConfideLog``
chaincode); every node derives the blocks from its events (``ledger.derived``). Endorsement, Raft or
BFT ordering and validation are Fabric's; the platform contract stays the Python state machine every
node runs. A batch's time is the proposal's timestamp (the appender's clock, as on etcd; the deriver
keeps block times monotonic). See docs/ledger-fabric.md."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from ...crypto import Identity
from ..derived import LogBackend, LogNodeLedger
from ..embedded.replica import Replica
from ..errors import LedgerError
from ..genesis import Genesis
from ..ordered_log import Cursor, log_tag, split_batches
from .gateway import FabricError, FabricGateway, now_ms
from .log import MAX_BATCH_BYTES, FabricLog, FabricReader
from .msp import FabricIdentity

__all__ = ["FabricBackend", "FabricNodeLedger", "FabricSource", "open_log"]


class FabricSource:
    def __init__(self, log: FabricLog, clock: Callable[[], int] = now_ms) -> None:
        self.log, self.clock = log, clock
        self._reader: FabricReader | None = None

    def genesis_anchor(self) -> str:
        gw = self.log.gateway
        return f"fabric:{gw.channel}/{gw.chaincode}"

    def reader(self, cursor: Cursor) -> FabricReader:
        if self._reader is not None:  # the deriver dropped it (reset): end its stream
            self._reader.close()
        self._reader = FabricReader(self.log, cursor)
        return self._reader

    def now_ms(self) -> int:
        return self.clock()

    def tip(self) -> int:
        return self.log.count() - 1

    def split(self, entries: Sequence[bytes], max_count: int) -> list[list[bytes]]:
        return split_batches(entries, max_count, MAX_BATCH_BYTES, "a Fabric")

    def append(self, batch: Sequence[bytes]) -> None:
        self.log.append(list(batch))


def open_log(
    genesis: Genesis,
    gateway: str,
    identity: FabricIdentity,
    *,
    tls_root_pem: bytes | None = None,
    clock: Callable[[], int] = now_ms,
    timeout_s: float = 30.0,
) -> FabricLog:
    """The consortium's log on the channel named in its genesis, checked: the chaincode's tag."""
    if genesis.ledger.backend != "fabric":
        raise LedgerError(f"this consortium's genesis names the {genesis.ledger.backend} ledger, not fabric")
    cfg = genesis.ledger.fabric
    gw = FabricGateway(
        gateway,
        identity,
        cfg.channel,
        cfg.chaincode,
        tls_root_pem=tls_root_pem,
        clock=clock,
        timeout_s=timeout_s,
    )
    log = FabricLog(gw)
    try:
        tag = log.tag()
    except FabricError as exc:
        raise FabricError(
            f"cannot read the log chaincode {cfg.chaincode!r} on channel {cfg.channel!r}: {exc}"
        ) from exc
    if tag != log_tag(genesis.chain_id):
        raise FabricError(
            f"the chaincode {cfg.chaincode!r} keeps another consortium's log than {genesis.chain_id!r}"
        )
    return log


class FabricBackend(LogBackend):
    """A whole ``fabric`` chain view in one process (tools, tests): its own store."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        orderer_identity: Identity,
        gateway: str,
        fabric_identity: FabricIdentity,
        path: str | Path = ":memory:",
        timeout_s: float = 60.0,
        clock: Callable[[], int] = now_ms,  # stamps the proposals this process makes
    ) -> None:
        self.log = open_log(genesis, gateway, fabric_identity, clock=clock)
        super().__init__(genesis, FabricSource(self.log, clock), orderer_identity, path, timeout_s)

    def close(self) -> None:
        super().close()
        self.log.close()


class FabricNodeLedger(LogNodeLedger):
    """An org node's link to the Fabric channel (see ``LogNodeLedger``)."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        identity: Identity,
        replica: Replica,
        lock: threading.RLock,
        gateway: str,
        fabric_identity: FabricIdentity,
        tls_root_pem: bytes | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.log = open_log(genesis, gateway, fabric_identity, tls_root_pem=tls_root_pem)
        super().__init__(genesis, FabricSource(self.log), identity, replica, lock, timeout_s)
