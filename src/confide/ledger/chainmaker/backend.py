"""The ``chainmaker`` ledger backend: a ChainMaker chain (长安链) orders the signed txs.

The same ``ConfideLog.sol`` as the ``evm`` backend runs as a ChainMaker user contract on its EVM
runtime (``genesis.ledger.chainmaker``: chain id and contract name); every node appends through the
official Python SDK with its own client certificate (its ``sdk_config.yml``) and derives the blocks
from the contract's ``Appended`` events (``ledger.derived``). ChainMaker's consensus (TBFT, Raft)
commits blocks finally, so there are no confirmations to wait for; a batch's time is its ChainMaker
block's (whole seconds), kept monotonic by the deriver. See docs/ledger-chainmaker.md.
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
from ..ordered_log import Cursor, log_tag
from .log import ChainMakerError, ChainMakerLog, ChainMakerReader

__all__ = ["ChainMakerBackend", "ChainMakerNodeLedger", "ChainMakerSource", "deploy_log", "open_log"]


def _check_genesis(genesis: Genesis) -> None:
    if genesis.ledger.backend != "chainmaker":
        raise LedgerError(
            f"this consortium's genesis names the {genesis.ledger.backend} ledger, not chainmaker"
        )


def _check_chain(genesis: Genesis, log: ChainMakerLog) -> None:
    want = genesis.ledger.chainmaker.chain_id
    if log.chain_id != want:
        raise ChainMakerError(
            f"{log.sdk_config} reaches ChainMaker chain {log.chain_id!r}, but the genesis names chain "
            f"{want!r} (ledger.chainmaker.chain_id): fix chain_client.chain_id in the SDK config"
        )


def open_log(genesis: Genesis, sdk_config: str | Path, timeout_s: float = 60.0) -> ChainMakerLog:
    """The consortium's ``ConfideLog`` on its ChainMaker chain, checked: the SDK config reaches the chain
    the genesis names, and the contract's tag is this consortium's (never follow another's log)."""
    _check_genesis(genesis)
    cfg = genesis.ledger.chainmaker
    log = ChainMakerLog(sdk_config, cfg.contract_name, timeout_s=timeout_s)
    try:
        _check_chain(genesis, log)
        if log.tag() != log_tag(genesis.chain_id):
            raise ChainMakerError(
                f"the contract '{cfg.contract_name}' on ChainMaker chain {cfg.chain_id!r} belongs to another "
                f"consortium than {genesis.chain_id!r} (its tag is not this consortium's): check "
                "ledger.chainmaker.contract_name in the genesis"
            )
    except BaseException:
        log.close()
        raise
    return log


def deploy_log(genesis: Genesis, sdk_config: str | Path, timeout_s: float = 60.0) -> ChainMakerLog:
    """Deploy the consortium's ``ConfideLog`` (``ledger.chainmaker.contract_name``, bound to its chain
    id's tag) with an SDK config whose endorsers satisfy the chain's contract-management policy."""
    _check_genesis(genesis)
    cfg = genesis.ledger.chainmaker
    log = ChainMakerLog.deploy(sdk_config, cfg.contract_name, log_tag(genesis.chain_id), timeout_s=timeout_s)
    try:
        _check_chain(genesis, log)
    except BaseException:
        log.close()
        raise
    return log


class ChainMakerSource:
    """The ChainMaker log as a ``LogSource``: a batch is a ChainMaker block with ``Appended`` events."""

    def __init__(self, log: ChainMakerLog) -> None:
        self.log = log

    def genesis_anchor(self) -> str:
        return f"chainmaker:{self.log.chain_id}/{self.log.contract_name}"

    def reader(self, cursor: Cursor) -> ChainMakerReader:
        return ChainMakerReader(self.log, cursor)

    def now_ms(self) -> int:
        return self.log.now_ms()

    def tip(self) -> int:
        return self.log.head()

    def split(self, entries: Sequence[bytes], max_count: int) -> list[list[bytes]]:
        return self.log.split(entries, max_count)

    def append(self, batch: Sequence[bytes]) -> None:
        self.log.append(batch)


class ChainMakerBackend(LogBackend):
    """A whole ``chainmaker`` chain view in one process (tools, tests, benchmarks): its own store."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        orderer_identity: Identity,
        sdk_config: str | Path,
        path: str | Path = ":memory:",
        timeout_s: float = 60.0,
        clock: Callable[[], int] | None = None,  # unused: block time is the ChainMaker chain's
    ) -> None:
        self.log = open_log(genesis, sdk_config, timeout_s)
        try:
            super().__init__(genesis, ChainMakerSource(self.log), orderer_identity, path, timeout_s)
        except BaseException:
            self.log.close()
            raise

    def close(self) -> None:
        super().close()
        self.log.close()


class ChainMakerNodeLedger(LogNodeLedger):
    """An org node's link to a ``chainmaker`` chain (see ``LogNodeLedger``)."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        identity: Identity,
        replica: Replica,
        lock: threading.RLock,
        sdk_config: str | Path,
        timeout_s: float = 60.0,
    ) -> None:
        self.log = open_log(genesis, sdk_config, timeout_s)
        try:
            super().__init__(genesis, ChainMakerSource(self.log), identity, replica, lock, timeout_s)
        except BaseException:
            self.log.close()
            raise

    def close(self) -> None:
        self.log.close()
