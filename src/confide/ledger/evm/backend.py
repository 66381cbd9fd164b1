"""The ``evm`` ledger backend: an EVM chain orders the signed txs; this process derives the blocks.

``submit_many`` first admits every tx against this backend's state exactly as the embedded orderer
does (a refused tx never goes to the chain, :func:`derive.admit`), then appends the admitted ones in
batches of at most ``max_block_txs`` (one chain transaction each, ``EvmLog.ensure``: resent if
dropped or reorganized out) and waits until they are confirmed and applied here. Blocks come from
:class:`derive.Deriver`; the replica verifies and applies them like any block, so a tx the chain
included but the contract refuses (a race between two submitters) stays with its rejection code.
``EvmNodeLedger`` is the same for an org node, whose follower applies the derived blocks to the
node's own store. See docs/ledger-evm.md.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ...crypto import Identity
from ..backend import Head, InclusionProof, LedgerBackend, Receipt
from ..block import Block, tx_proof
from ..codes import Code
from ..embedded.replica import Replica
from ..embedded.store import ChainDB
from ..errors import LedgerError, TxRefused
from ..genesis import Genesis
from ..store import ChainStore
from ..tx import SignedTx
from .derive import Deriver, admit, encode_entry
from .log import EvmError, EvmLog

__all__ = ["EvmBackend", "EvmNodeLedger", "log_tag", "open_log"]


def log_tag(chain_id: str) -> bytes:
    """The ``ConfideLog`` tag of a consortium: binds the log to its Confide chain id."""
    return hashlib.sha256(b"confide-log/" + chain_id.encode("utf-8")).digest()


def open_log(genesis: Genesis, rpc_url: str, account_key: str, log_address: str | None = None) -> EvmLog:
    """The consortium's log on the EVM endpoint, checked: chain id and the log's tag."""
    if genesis.ledger.backend != "evm":
        raise LedgerError("this consortium's genesis names the embedded ledger, not evm")
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


def _proof(genesis: Genesis, store: ChainStore, tx_id: str) -> InclusionProof:
    row = store.find_tx(tx_id)
    if row is None:
        raise KeyError(f"tx {tx_id} is not on this chain")
    block = store.get_block(row["height"])
    assert block is not None
    suite, i = genesis.crypto, row["idx"]
    return InclusionProof(
        tx_id=tx_id,
        height=row["height"],
        index=i,
        tree_size=len(block.txs),
        leaf=(suite.hash(block.txs[i].body) + block.txs[i].signature).hex(),
        path=[p.hex() for p in tx_proof(suite, block.txs, i)],
        header=block.header_bytes.decode("utf-8"),
        orderer_sig=block.signature.hex(),
    )


def _receipt(store: ChainStore, tx_id: str) -> Receipt | TxRefused:
    row = store.find_tx(tx_id)
    assert row is not None
    if row["code"] != 0:  # included by the chain, refused when applied (a race): recorded so
        return TxRefused(tx_id, int(row["code"]), Code(row["code"]).name, row["reason"])
    return Receipt(tx_id, row["height"], row["idx"], row["code"], row["reason"])


def _append(genesis: Genesis, log: EvmLog, txs: Sequence[SignedTx], confirmations: int) -> None:
    """One chain transaction per batch of at most ``max_block_txs`` that fits in a block's gas."""
    for batch in log.split([encode_entry(s) for s in txs], genesis.params.max_block_txs):
        log.ensure(batch, confirmations=confirmations)


class EvmBackend(LedgerBackend):
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
        self.genesis = genesis
        self.log = open_log(genesis, rpc_url, account_key, log_address)
        self.confirmations = genesis.ledger.evm.confirmations if confirmations is None else confirmations
        self.deriver = Deriver(genesis, self.log, orderer_identity, self.confirmations)
        self.timeout_s = timeout_s
        self.db = ChainDB(path)
        self.replica = Replica(self.db, genesis)
        self._lock = threading.RLock()
        if self.replica.height < 0:
            self.replica.apply_block(self.deriver.genesis_block())

    def sync(self) -> int:
        """Derive and apply the blocks of newly confirmed EVM blocks; the height reached."""
        with self._lock:
            while True:
                head = self.replica.head_header
                assert head is not None
                blocks = self.deriver.next_blocks(self.db, head, self.replica.head_hash, 200)
                for block in blocks:
                    self.replica.apply_block(block)
                if not blocks:
                    return self.replica.height

    def submit_many(self, stxs: Sequence[SignedTx]) -> list[Receipt | Exception]:
        with self._lock:
            self.sync()
            verdicts = admit(self.replica, self.log, stxs)
            ok = [stx for stx, v in zip(stxs, verdicts, strict=True) if isinstance(v, str)]
            _append(self.genesis, self.log, ok, self.confirmations)
            wanted = [v for v in verdicts if isinstance(v, str)]
            deadline = time.monotonic() + self.timeout_s
            while not all(self.db.has_tx(t) for t in wanted):
                if time.monotonic() > deadline:
                    raise EvmError("appended txs were not derived into blocks in time (is the chain mining?)")
                time.sleep(0.05)
                self.sync()
        return [v if isinstance(v, TxRefused) else _receipt(self.db, v) for v in verdicts]

    def submit(self, stx: SignedTx) -> Receipt:
        (r,) = self.submit_many([stx])
        if isinstance(r, Exception):
            raise r
        return r

    def blocks_since(self, height: int, limit: int = 100) -> list[Block]:
        self.sync()
        return self.db.blocks_since(height, limit)

    def head(self) -> Head:
        self.sync()
        head = self.db.head()
        assert head is not None
        return Head(head[0], head[1], head[2].time)

    def proof(self, tx_id: str) -> InclusionProof:
        return _proof(self.genesis, self.db, tx_id)

    def close(self) -> None:
        self.db.close()


class EvmNodeLedger(LedgerBackend):
    """An org node's link to an ``evm`` chain: its follower asks :meth:`blocks_since` for the blocks
    after its head and applies them to the node's store; :meth:`submit` admits against the node's
    state, appends, and waits until the follower applied the tx."""

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
        self.genesis = genesis
        self.replica, self.lock, self.timeout_s = replica, lock, timeout_s
        self.log = open_log(genesis, rpc_url, account_key)
        self.confirmations = genesis.ledger.evm.confirmations
        self.deriver = Deriver(genesis, self.log, identity, self.confirmations)
        self.nudge: Callable[[], None] = lambda: None  # the node's follower, once it exists
        self._derived_height = -1  # the last block handed to the follower
        if replica.height < 0:
            with lock:
                replica.apply_block(self.deriver.genesis_block())

    def blocks_since(self, height: int, limit: int = 100) -> list[Block]:
        with self.lock:
            if height < self.replica.height:
                return self.replica.db.blocks_since(height, limit)
            head = self.replica.head_header
            assert head is not None
            try:
                blocks = self.deriver.next_blocks(self.replica.db, head, self.replica.head_hash, limit)
            except Exception:
                self.deriver.reset()  # start again from the head's anchor next time
                raise
            if blocks:
                self._derived_height = blocks[-1].header.height
            return blocks

    def _caught_up(self, evm_block: int) -> bool:
        """Has the follower read the log up to ``evm_block`` and applied what it derived?"""
        reader = self.deriver._reader
        return (
            reader is not None
            and reader.cursor.block_number >= evm_block
            and not self.deriver._pending
            and self.replica.height >= self._derived_height
        )

    def catch_up(self) -> None:
        """Wait until this node applied every block confirmed on the chain now: a tx is admitted
        against the same state the chain will apply it to (as far as this node can know)."""
        target = self.log.head() - self.confirmations
        deadline = time.monotonic() + self.timeout_s
        while not self._caught_up(target):
            if time.monotonic() > deadline:
                raise EvmError(
                    "this node did not catch up with the EVM log in time (is its follower running?)"
                )
            self.nudge()
            time.sleep(0.01)

    def submit_many(self, stxs: Sequence[SignedTx]) -> list[Receipt | Exception]:
        self.catch_up()
        with self.lock:
            verdicts = admit(self.replica, self.log, stxs)
        ok = [stx for stx, v in zip(stxs, verdicts, strict=True) if isinstance(v, str)]
        _append(self.genesis, self.log, ok, self.confirmations)
        wanted = [v for v in verdicts if isinstance(v, str)]
        deadline = time.monotonic() + self.timeout_s
        while not all(self.replica.db.has_tx(t) for t in wanted):
            if time.monotonic() > deadline:
                raise EvmError("appended txs were not applied in time (is the chain mining? the follower?)")
            self.nudge()
            time.sleep(0.02)
        return [v if isinstance(v, TxRefused) else _receipt(self.replica.db, v) for v in verdicts]

    def submit(self, stx: SignedTx) -> Receipt:
        (r,) = self.submit_many([stx])
        if isinstance(r, Exception):
            raise r
        return r

    def head(self) -> Head:
        head = self.replica.db.head()
        assert head is not None
        return Head(head[0], head[1], head[2].time)

    def proof(self, tx_id: str) -> InclusionProof:
        return _proof(self.genesis, self.replica.db, tx_id)
