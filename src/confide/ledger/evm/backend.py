"""The ``evm`` ledger backend: an EVM chain orders the signed txs; this node derives the blocks.

``submit_many`` first runs every tx against this node's state exactly as the embedded orderer
admits them (a refused tx never goes to the chain), then appends the admitted ones in batches of at
most ``max_block_txs`` (one chain transaction each, ``EvmLog.ensure``: resent if dropped or
reorganized out) and waits until they are confirmed and applied here. Blocks are derived from the
log (:meth:`EvmBackend.sync`): each confirmed EVM block with ``Appended`` events gives the next block,
its txs in log order (bytes that are not a signed tx, and txs already on this chain, are skipped),
its time the EVM block's, its anchor the EVM block number and hash, signed by this node's key. The
replica then verifies and applies it like any block, so a tx the chain included but the contract
refuses (a race between two submitters) stays with its rejection code. Every node that follows the
same log derives the same header bytes; see docs/ledger-evm.md.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ...crypto import Identity
from ..backend import Head, InclusionProof, LedgerBackend, Receipt
from ..block import BLOCK_DOMAIN, Block, BlockHeader, tx_proof, tx_root
from ..codes import Code
from ..contract import BlockInfo, Overlay
from ..contract.state import ReadCache
from ..embedded.replica import Replica
from ..embedded.store import ChainDB
from ..errors import LedgerError, TxRefused
from ..genesis import Genesis
from ..tx import SignedTx
from .log import Cursor, EvmError, EvmLog, LogEntry, LogReader

__all__ = ["EvmBackend", "decode_entry", "encode_entry", "log_tag"]

_LEN = struct.Struct(">I")
CURSOR_KEY = "evm_cursor"


def log_tag(chain_id: str) -> bytes:
    """The ``ConfideLog`` tag of a consortium: binds the log to its Confide chain id."""
    return hashlib.sha256(b"confide-log/" + chain_id.encode("utf-8")).digest()


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


class EvmBackend(LedgerBackend):
    """One node's view of an ``evm`` consortium: its EVM endpoint, its derived chain, its key."""

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
        if genesis.ledger.backend != "evm":
            raise LedgerError("this consortium's genesis names the embedded ledger, not evm")
        self.genesis = genesis
        self.identity = orderer_identity  # the key this node signs derived blocks with
        cfg = genesis.ledger.evm
        address = log_address or cfg.log_address
        if address is None:
            raise LedgerError("no EVM log address: set ledger.evm.log_address in the genesis file")
        self.log = EvmLog(rpc_url, address, account_key)
        if cfg.chain_id is not None and self.log.w3.eth.chain_id != cfg.chain_id:
            raise EvmError(f"the EVM endpoint serves chain {self.log.w3.eth.chain_id}, not {cfg.chain_id}")
        if self.log.tag() != log_tag(genesis.chain_id):
            raise EvmError(f"the log at {address} belongs to another consortium than {genesis.chain_id!r}")
        self.confirmations = cfg.confirmations if confirmations is None else confirmations
        self.timeout_s = timeout_s
        self.db = ChainDB(path)
        self.replica = Replica(self.db, genesis)
        self._lock = threading.RLock()
        saved = self.db.get_meta(CURSOR_KEY)
        cursor = Cursor(**json.loads(saved)) if saved is not None else Cursor()
        self.reader = LogReader(self.log, self.confirmations, cursor)
        if self.replica.height < 0:
            self._genesis_block()

    # -- deriving ------------------------------------------------------------------------------------
    def _sign(self, header: BlockHeader, txs: tuple[SignedTx, ...]) -> Block:
        raw = header.encode()
        return Block(raw, self.identity.sign(BLOCK_DOMAIN + raw), txs)

    def _genesis_block(self) -> None:
        g = self.genesis
        header = BlockHeader(
            chain=g.chain_id,
            height=0,
            prev_hash="00" * 32,
            tx_root=tx_root(g.crypto, []),
            tx_count=0,
            time=g.genesis_time,
            orderer="",
            genesis=g.digest(),
            anchor=f"log:{self.log.address.lower()}",
        )
        self.replica.apply_block(self._sign(header, ()))

    def sync(self) -> int:
        """Derive and apply the blocks of newly confirmed EVM blocks; the height reached."""
        with self._lock:
            while True:
                new, _ = self.reader.poll()  # duplicates (a resent batch) are dropped here
                by_block: dict[int, list[LogEntry]] = {}
                for e in new:
                    by_block.setdefault(e.block_number, []).append(e)
                for entries in by_block.values():
                    self._derive(entries)
                self.db.set_meta(CURSOR_KEY, json.dumps(self.reader.cursor.__dict__).encode())
                if not new and self.reader.cursor.block_number >= self.log.head() - self.confirmations:
                    return self.replica.height

    def _derive(self, entries: list[LogEntry]) -> None:
        suite, txs, ids = self.genesis.crypto, [], set()
        for e in entries:
            stx = decode_entry(e.signed_tx)
            if stx is None:
                continue
            tx_id = stx.tx_id(suite)
            if tx_id in ids or self.db.has_tx(tx_id):
                continue  # already on this chain (a batch resent and included twice)
            ids.add(tx_id)
            txs.append(stx)
        if not txs:
            return
        prev = self.replica.head_header
        assert prev is not None
        first = entries[0]
        header = BlockHeader(
            chain=self.genesis.chain_id,
            height=self.replica.height + 1,
            prev_hash=self.replica.head_hash,
            tx_root=tx_root(suite, txs),
            tx_count=len(txs),
            time=max(first.block_time * 1000, prev.time),
            orderer="",
            anchor=f"{first.block_number}:{first.block_hash}",
        )
        self.replica.apply_block(self._sign(header, tuple(txs)))

    # -- submitting ----------------------------------------------------------------------------------
    def _admit(self, stxs: Sequence[SignedTx]) -> list[str | TxRefused]:
        """Run the txs against this node's state at the chain's current time, as the embedded
        orderer admits them (in-batch order, replays included)."""
        overlay = Overlay(ReadCache(self.replica.state))
        latest = int(self.log.w3.eth.get_block("latest")["timestamp"]) * 1000
        prev = self.replica.head_header
        assert prev is not None
        info = BlockInfo(self.replica.height + 1, max(latest, prev.time))
        admitted: set[str] = set()

        def seen(tx_id: str) -> bool:
            return tx_id in admitted or self.db.has_tx(tx_id)

        out: list[str | TxRefused] = []
        for stx in stxs:
            tx_id, res = self.replica.contract.execute(overlay, stx, info, seen)
            if res.ok:
                admitted.add(tx_id)
                out.append(tx_id)
            else:
                out.append(TxRefused(tx_id, int(res.code), res.code.name, res.reason))
        return out

    def submit_many(self, stxs: Sequence[SignedTx]) -> list[Receipt | Exception]:
        with self._lock:
            self.sync()
            verdicts = self._admit(stxs)
            ok = [stx for stx, v in zip(stxs, verdicts, strict=True) if isinstance(v, str)]
            size = self.genesis.params.max_block_txs
            for i in range(0, len(ok), size):
                self.log.ensure([encode_entry(s) for s in ok[i : i + size]], confirmations=self.confirmations)
            wanted = [v for v in verdicts if isinstance(v, str)]
            deadline = time.monotonic() + self.timeout_s
            while not all(self.db.has_tx(t) for t in wanted):
                if time.monotonic() > deadline:
                    raise EvmError("appended txs were not derived into blocks in time (is the chain mining?)")
                time.sleep(0.05)
                self.sync()
        return [v if isinstance(v, TxRefused) else self._receipt(v) for v in verdicts]

    def submit(self, stx: SignedTx) -> Receipt:
        (r,) = self.submit_many([stx])
        if isinstance(r, Exception):
            raise r
        return r

    def _receipt(self, tx_id: str) -> Receipt | TxRefused:
        row = self.db.find_tx(tx_id)
        assert row is not None
        if row["code"] != 0:  # included by the chain, refused when applied (a race): recorded so
            return TxRefused(tx_id, int(row["code"]), Code(row["code"]).name, row["reason"])
        return Receipt(tx_id, row["height"], row["idx"], row["code"], row["reason"])

    # -- reading -------------------------------------------------------------------------------------
    def blocks_since(self, height: int, limit: int = 100) -> list[Block]:
        self.sync()
        return self.db.blocks_since(height, limit)

    def head(self) -> Head:
        self.sync()
        head = self.db.head()
        assert head is not None
        return Head(head[0], head[1], head[2].time)

    def proof(self, tx_id: str) -> InclusionProof:
        row = self.db.find_tx(tx_id)
        if row is None:
            raise KeyError(f"tx {tx_id} is not on this chain")
        block = self.db.get_block(row["height"])
        assert block is not None
        suite, i = self.genesis.crypto, row["idx"]
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

    def close(self) -> None:
        self.db.close()
