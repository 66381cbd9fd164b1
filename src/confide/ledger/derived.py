"""Chains whose order comes from an outside log: every node derives the same blocks from it.

An EVM chain (``evm``) or an etcd cluster (``etcd``, Raft) keeps the ordered log of signed txs; no
Confide orderer signs blocks. A :class:`LogSource` is what a log offers: a reader from a cursor, an
append, the current time and tip. From it:

* :class:`Deriver` turns each batch of the log (an EVM block's ``Appended`` events, an etcd batch
  key) into the next block: its txs in log order (bytes that are not a signed tx, and txs already on
  this chain, skipped), its time the batch's (never before the previous block's), its ``anchor``
  where it comes from, ``orderer`` empty, signed by this node's key. Same log ⇒ same header bytes on
  every node. Where to read from is the head block's anchor, so a node that crashed between reading
  and applying re-reads what it had not applied.
* :func:`admit` runs txs against a replica's state exactly as the embedded orderer admits them, at
  the log's current time: a refused tx never goes to the log.
* :class:`LogBackend` is a whole chain view in one process (tools, tests, benchmarks: its own store);
  :class:`LogNodeLedger` is an org node's link (its follower applies the derived blocks to the node's
  store; a submit first catches up, admits, appends and waits for the follower).
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from ..crypto import Identity
from .backend import Head, InclusionProof, LedgerBackend, Receipt
from .block import Block, BlockHeader, genesis_header, sign_block, tx_proof, tx_root
from .codes import Code
from .embedded.admission import Admission
from .embedded.replica import Replica
from .embedded.store import ChainDB
from .errors import LedgerError, TxRefused
from .genesis import Genesis
from .ordered_log import Cursor, LogEntry
from .store import ChainStore
from .tx import SignedTx

__all__ = [
    "Deriver",
    "LogBackend",
    "LogNodeLedger",
    "LogSource",
    "Poller",
    "admit",
    "decode_entry",
    "encode_entry",
]

_LEN = struct.Struct(">I")


class Poller(Protocol):
    cursor: Cursor

    def poll(self) -> tuple[list[LogEntry], list[LogEntry]]: ...


class LogSource(Protocol):
    def genesis_anchor(self) -> str: ...

    def reader(self, cursor: Cursor) -> Poller: ...

    def now_ms(self) -> int: ...

    def tip(self) -> int:
        """The last batch a reader may read now (its ``cursor.block_number`` reaches it)."""
        ...

    def split(self, entries: Sequence[bytes], max_count: int) -> list[list[bytes]]: ...

    def append(self, batch: Sequence[bytes]) -> None:
        """Append one batch and return once it is durable (confirmed) in the log."""
        ...


def encode_entry(stx: SignedTx) -> bytes:
    return _LEN.pack(len(stx.body)) + stx.body + stx.signature


def decode_entry(raw: bytes) -> SignedTx | None:
    """The signed tx in a log entry, or None for bytes that are not one (anyone may append)."""
    if len(raw) < 4:
        return None
    (n,) = _LEN.unpack_from(raw)
    if n == 0 or len(raw) - 4 - n <= 0:
        return None
    return SignedTx(raw[4 : 4 + n], raw[4 + n :])


class Deriver:
    def __init__(self, genesis: Genesis, source: LogSource, identity: Identity) -> None:
        self.genesis, self.source, self.identity = genesis, source, identity
        self._reader: Poller | None = None
        self._pending: list[LogEntry] = []  # read, not yet turned into blocks (over the limit)

    def genesis_block(self) -> Block:
        g = self.genesis
        anchor = self.source.genesis_anchor()
        header = genesis_header(g.crypto, g.chain_id, g.genesis_time, g.digest(), orderer="", anchor=anchor)
        return sign_block(self.identity, header, ())

    @property
    def reader(self) -> Poller | None:
        return self._reader

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def _reader_at(self, head: BlockHeader) -> Poller:
        if self._reader is None:
            number, _, block_hash = head.anchor.partition(":")
            cursor = Cursor(int(number), block_hash) if number.isdigit() else Cursor()
            self._reader = self.source.reader(cursor)
        return self._reader

    def next_blocks(self, store: ChainStore, head: BlockHeader, head_hash: str, limit: int) -> list[Block]:
        """The blocks that follow ``head`` from newly readable batches (at most ``limit``)."""
        reader = self._reader_at(head)
        if not self._pending:
            new, _ = reader.poll()
            self._pending = new
        out: list[Block] = []
        suite, prev, prev_hash = self.genesis.crypto, head, head_hash
        seen: set[str] = set()
        while self._pending and len(out) < limit:
            number = self._pending[0].block_number
            entries = [e for e in self._pending if e.block_number == number]
            self._pending = self._pending[len(entries) :]
            txs = []
            for e in entries:
                stx = decode_entry(e.signed_tx)
                if stx is None:
                    continue
                tx_id = stx.tx_id(suite)
                if tx_id in seen or store.has_tx(tx_id):
                    continue  # already on this chain (a batch resent and included twice)
                seen.add(tx_id)
                txs.append(stx)
            if not txs:
                continue
            first = entries[0]
            header = BlockHeader(
                chain=self.genesis.chain_id,
                height=prev.height + 1,
                prev_hash=prev_hash,
                tx_root=tx_root(suite, txs),
                tx_count=len(txs),
                time=max(first.time_ms, prev.time),
                orderer="",
                anchor=f"{number}:{first.block_hash}",
            )
            block = sign_block(self.identity, header, tuple(txs))
            out.append(block)
            prev, prev_hash = header, block.block_hash(suite)
        return out

    def reset(self) -> None:
        """Forget the reader (the next call starts again from the head's anchor)."""
        self._reader, self._pending = None, []


def admit(replica: Replica, now_ms: int, stxs: Sequence[SignedTx]) -> list[str | TxRefused]:
    """Run ``stxs`` against the replica's state at ``now_ms``, in order, as the embedded orderer
    admits a batch (``Admission``): a tx id for each admitted tx, the refusal for each other."""
    batch = Admission(replica, now_ms)
    out: list[str | TxRefused] = []
    for stx in stxs:
        tx_id, res = batch.admit(stx)
        out.append(tx_id if res.ok else TxRefused(tx_id, int(res.code), res.code.name, res.reason))
    return out


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
    if row["code"] != 0:  # included by the log, refused when applied (a race): recorded so
        return TxRefused(tx_id, int(row["code"]), Code(row["code"]).name, row["reason"])
    return Receipt(tx_id, row["height"], row["idx"], row["code"], row["reason"])


def _append(genesis: Genesis, source: LogSource, txs: Sequence[SignedTx]) -> None:
    """One batch (an EVM chain transaction, an etcd key) per block of at most ``max_block_txs``."""
    for batch in source.split([encode_entry(s) for s in txs], genesis.params.max_block_txs):
        source.append(batch)


class LogBackend(LedgerBackend):
    """A whole derived-chain view in one process (tools, tests, benchmarks): its own store."""

    def __init__(
        self, genesis: Genesis, source: LogSource, identity: Identity, path: str | Path, timeout_s: float
    ) -> None:
        self.genesis, self.source, self.timeout_s = genesis, source, timeout_s
        self.deriver = Deriver(genesis, source, identity)
        self.db = ChainDB(path)
        self.replica = Replica(self.db, genesis)
        self._lock = threading.RLock()
        if self.replica.height < 0:
            self.replica.apply_block(self.deriver.genesis_block())

    def sync(self) -> int:
        """Derive and apply the blocks of newly readable batches; the height reached."""
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
            verdicts = admit(self.replica, self.source.now_ms(), stxs)
            _append(
                self.genesis,
                self.source,
                [s for s, v in zip(stxs, verdicts, strict=True) if isinstance(v, str)],
            )
            wanted = [v for v in verdicts if isinstance(v, str)]
            deadline = time.monotonic() + self.timeout_s
            while not all(self.db.has_tx(t) for t in wanted):
                if time.monotonic() > deadline:
                    raise LedgerError(
                        "appended txs were not derived into blocks in time (is the log moving?)"
                    )
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


class LogNodeLedger(LedgerBackend):
    """An org node's link to a derived chain: its follower asks :meth:`blocks_since` for the blocks
    after its head and applies them to the node's store; :meth:`submit` first waits until the node
    applied everything readable now, admits against the node's state, appends and waits until the
    follower applied the tx."""

    def __init__(
        self,
        genesis: Genesis,
        source: LogSource,
        identity: Identity,
        replica: Replica,
        lock: threading.RLock,
        timeout_s: float = 60.0,
    ) -> None:
        self.genesis, self.source = genesis, source
        self.replica, self.lock, self.timeout_s = replica, lock, timeout_s
        self.deriver = Deriver(genesis, source, identity)
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

    def _caught_up(self, tip: int) -> bool:
        # under the lock: the follower derives (advancing the cursor) and applies under it, so the
        # cursor, the pending entries and the derived height are read as one state
        with self.lock:
            reader = self.deriver.reader
            return (
                reader is not None
                and reader.cursor.block_number >= tip
                and not self.deriver.pending
                and self.replica.height >= self._derived_height
            )

    def catch_up(self) -> None:
        """Wait until this node applied every batch readable now: a tx is admitted against the same
        state the log will apply it to (as far as this node can know)."""
        tip = self.source.tip()
        deadline = time.monotonic() + self.timeout_s
        while not self._caught_up(tip):
            if time.monotonic() > deadline:
                raise LedgerError(
                    "this node did not catch up with the log in time (is its follower running?)"
                )
            self.nudge()
            time.sleep(0.01)

    def submit_many(self, stxs: Sequence[SignedTx]) -> list[Receipt | Exception]:
        self.catch_up()
        with self.lock:
            verdicts = admit(self.replica, self.source.now_ms(), stxs)
        _append(
            self.genesis, self.source, [s for s, v in zip(stxs, verdicts, strict=True) if isinstance(v, str)]
        )
        wanted = [v for v in verdicts if isinstance(v, str)]
        deadline = time.monotonic() + self.timeout_s
        while not all(self.replica.db.has_tx(t) for t in wanted):
            if time.monotonic() > deadline:
                raise LedgerError("appended txs were not applied in time (is the log moving? the follower?)")
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
