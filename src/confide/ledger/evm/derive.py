"""Deriving Confide blocks from the EVM log, and admitting txs before they go to it.

:class:`Deriver` turns each confirmed EVM block with ``Appended`` events into the next Confide block:
its txs in log order (bytes that are not a signed tx, and txs already on this chain, skipped), its
time the EVM block's (never before the previous block's), its anchor the EVM block number and hash,
``orderer`` empty, signed by this node's key. Same log ⇒ same header bytes on every node. Where to
read from is the head block's anchor, so a node that crashed between reading and applying re-reads
what it had not applied (what it skipped, it skips again).

:func:`admit` runs txs against a replica's state exactly as the embedded orderer admits them, at
the EVM chain's current time: a refused tx never goes to the chain.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ...crypto import Identity
from ..block import Block, BlockHeader, genesis_header, sign_block, tx_root
from ..contract import BlockInfo, Overlay
from ..contract.state import ReadCache
from ..embedded.replica import Replica
from ..errors import TxRefused
from ..genesis import Genesis
from ..store import ChainStore
from ..tx import SignedTx
from .log import Cursor, EvmLog, LogEntry, LogReader

__all__ = ["Deriver", "admit", "decode_entry", "encode_entry"]

_LEN = struct.Struct(">I")


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
    def __init__(self, genesis: Genesis, log: EvmLog, identity: Identity, confirmations: int) -> None:
        self.genesis, self.log, self.identity, self.confirmations = genesis, log, identity, confirmations
        self._reader: LogReader | None = None
        self._pending: list[LogEntry] = []  # read, not yet turned into blocks (over the limit)

    def _sign(self, header: BlockHeader, txs: tuple[SignedTx, ...]) -> Block:
        return sign_block(self.identity, header, txs)

    def genesis_block(self) -> Block:
        g = self.genesis
        anchor = f"log:{self.log.address.lower()}"
        header = genesis_header(g.crypto, g.chain_id, g.genesis_time, g.digest(), orderer="", anchor=anchor)
        return self._sign(header, ())

    def _reader_at(self, head: BlockHeader) -> LogReader:
        if self._reader is None:
            number, _, block_hash = head.anchor.partition(":")
            cursor = Cursor() if number == "log" else Cursor(int(number), block_hash)
            self._reader = LogReader(self.log, self.confirmations, cursor)
        return self._reader

    def next_blocks(self, store: ChainStore, head: BlockHeader, head_hash: str, limit: int) -> list[Block]:
        """The blocks that follow ``head`` from newly confirmed EVM blocks (at most ``limit``)."""
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
            header = BlockHeader(
                chain=self.genesis.chain_id,
                height=prev.height + 1,
                prev_hash=prev_hash,
                tx_root=tx_root(suite, txs),
                tx_count=len(txs),
                time=max(entries[0].block_time * 1000, prev.time),
                orderer="",
                anchor=f"{number}:{entries[0].block_hash}",
            )
            block = self._sign(header, tuple(txs))
            out.append(block)
            prev, prev_hash = header, block.block_hash(suite)
        return out

    def reset(self) -> None:
        """Forget the reader (the next call starts again from the head's anchor)."""
        self._reader, self._pending = None, []


def admit(replica: Replica, log: EvmLog, stxs: Sequence[SignedTx]) -> list[str | TxRefused]:
    """Run ``stxs`` against the replica's state at the EVM chain's current time, in order (replays
    inside the batch included): a tx id for each admitted tx, the refusal for each other."""
    overlay = Overlay(ReadCache(replica.state))
    latest = int(log.w3.eth.get_block("latest")["timestamp"]) * 1000
    prev = replica.head_header
    assert prev is not None
    info = BlockInfo(replica.height + 1, max(latest, prev.time))
    admitted: set[str] = set()

    def seen(tx_id: str) -> bool:
        return tx_id in admitted or replica.db.has_tx(tx_id)

    out: list[str | TxRefused] = []
    for stx in stxs:
        tx_id, res = replica.contract.execute(overlay, stx, info, seen)
        if res.ok:
            admitted.add(tx_id)
            out.append(tx_id)
        else:
            out.append(TxRefused(tx_id, int(res.code), res.code.name, res.reason))
    return out
