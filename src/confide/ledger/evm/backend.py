"""The ``evm`` ledger backend: an EVM chain orders the signed txs (``ConfideLog.sol``); every node
derives the blocks from its log (``ledger.derived``). See docs/ledger-evm.md."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from ...crypto import Identity
from ..derived import LogBackend, LogNodeLedger
from ..embedded.replica import Replica
from ..errors import LedgerError
from ..genesis import Genesis
from ..ordered_log import log_tag
from .log import Cursor, EvmError, EvmLog, LogReader

__all__ = ["EvmBackend", "EvmNodeLedger", "EvmSource", "log_tag", "open_log"]


def open_log(genesis: Genesis, rpc_url: str, account_key: str, log_address: str | None = None) -> EvmLog:
    """The consortium's log on the EVM endpoint, checked: chain id and the log's tag."""
    if genesis.ledger.backend != "evm":
        raise LedgerError(f"this consortium's genesis names the {genesis.ledger.backend} ledger, not evm")
    cfg = genesis.ledger.evm
    address = log_address or cfg.log_address
    if address is None:
        raise LedgerError("no EVM log address: set ledger.evm.log_address in the genesis file")
    log = EvmLog(rpc_url, address, account_key)
    if cfg.chain_id is not None and log.w3.eth.chain_id != cfg.chain_id:
        raise EvmError(f"the EVM endpoint serves chain {log.w3.eth.chain_id}, not {cfg.chain_id}")
    if log.tag() != log_tag(genesis.chain_id):
        raise EvmError(f"the log at {address} belongs to another consortium than {genesis.chain_id!r}")
    return log


class EvmSource:
    """The EVM log as a ``LogSource``: batches are EVM blocks ``confirmations`` deep."""

    def __init__(self, log: EvmLog, confirmations: int) -> None:
        self.log, self.confirmations = log, confirmations

    def genesis_anchor(self) -> str:
        return f"log:{self.log.address.lower()}"

    def reader(self, cursor: Cursor) -> LogReader:
        return LogReader(self.log, self.confirmations, cursor)

    def now_ms(self) -> int:
        return int(self.log.w3.eth.get_block("latest")["timestamp"]) * 1000

    def tip(self) -> int:
        return self.log.head() - self.confirmations

    def split(self, entries: Sequence[bytes], max_count: int) -> list[list[bytes]]:
        return self.log.split(entries, max_count)

    def append(self, batch: Sequence[bytes]) -> None:
        self.log.ensure(batch, confirmations=self.confirmations)


class EvmBackend(LogBackend):
    """A whole ``evm`` chain view in one process (tools, tests, benchmarks): its own store."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        orderer_identity: Identity,
        rpc_url: str,
        account_key: str,
        path: str | Path = ":memory:",
        log_address: str | None = None,
        confirmations: int | None = None,
        timeout_s: float = 60.0,
        clock: Callable[[], int] | None = None,  # unused: block time is the EVM chain's
    ) -> None:
        self.log = open_log(genesis, rpc_url, account_key, log_address)
        depth = genesis.ledger.evm.confirmations if confirmations is None else confirmations
        super().__init__(genesis, EvmSource(self.log, depth), orderer_identity, path, timeout_s)


class EvmNodeLedger(LogNodeLedger):
    """An org node's link to an ``evm`` chain (see ``LogNodeLedger``)."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        identity: Identity,
        replica: Replica,
        lock: threading.RLock,
        rpc_url: str,
        account_key: str,
        timeout_s: float = 60.0,
    ) -> None:
        self.log = open_log(genesis, rpc_url, account_key)
        source = EvmSource(self.log, genesis.ledger.evm.confirmations)
        super().__init__(genesis, source, identity, replica, lock, timeout_s)
