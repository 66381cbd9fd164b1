"""Solo orderer: admit signed txs, batch them, sign blocks, persist.

The orderer keeps its own replica of the state. A batch opens when its first
tx arrives and fixes the block time then, so every admission check runs with
exactly the (height, time) the block will carry: a tx the orderer admits gets
the same outcome on every replica. A refused tx raises :class:`TxRefused` and
is never ordered. Because admission already executed the batch against the
orderer's state with the block's own (height, time), the orderer commits those
writes directly instead of re-executing; every other replica re-executes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ...crypto import Identity
from ..block import Block, BlockHeader, genesis_header, sign_block, tx_root
from ..codes import Result
from ..contract import BlockInfo, Overlay
from ..contract.state import ReadCache
from ..errors import LedgerError, TxRefused
from ..genesis import Genesis
from ..store import ChainStore
from ..tx import SignedTx
from .replica import Replica

__all__ = ["SoloOrderer", "wall_clock_ms"]


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class SoloOrderer:
    def __init__(
        self,
        db: ChainStore,
        genesis: Genesis,
        identity: Identity,
        *,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if identity.public_hex != genesis.orderer_public_key:
            raise LedgerError("this key is not the orderer key named in the genesis file")
        self.identity = identity
        self.genesis = genesis
        self.replica = Replica(db, genesis)
        self.clock = clock
        if self.replica.height < 0:
            self._genesis_block()
        self._reset_batch()

    @property
    def db(self) -> ChainStore:
        return self.replica.db

    def _reset_batch(self) -> None:
        self._txs: list[SignedTx] = []
        self._ids: list[str] = []
        self._ids_set: set[str] = set()
        self._outcomes: list[tuple[str, str, Result]] = []
        self._overlay = Overlay(ReadCache(self.replica.state))  # fixed until cut
        self._info: BlockInfo | None = None

    def _sign(self, header: BlockHeader, txs: tuple[SignedTx, ...]) -> Block:
        return sign_block(self.identity, header, txs)

    def _genesis_block(self) -> None:
        g = self.genesis
        header = genesis_header(g.crypto, g.chain_id, g.genesis_time, g.digest(), orderer=g.orderer_key_id())
        self.replica.apply_block(self._sign(header, ()))

    def _seen(self, tx_id: str) -> bool:
        return tx_id in self._ids_set or self.db.has_tx(tx_id)

    @property
    def pending(self) -> int:
        return len(self._txs)

    def submit(self, stx: SignedTx) -> str:
        """Admit one tx into the open batch, or raise :class:`TxRefused`. Returns the tx id."""
        if self._info is None:
            prev = self.replica.head_header
            assert prev is not None
            self._info = BlockInfo(self.replica.height + 1, max(self.clock(), prev.time))
        tx_id, res = self.replica.contract.execute(self._overlay, stx, self._info, self._seen)
        if not res.ok:
            if not self._txs:
                self._info = None  # an empty batch must not pin an old block time
            raise TxRefused(tx_id, int(res.code), res.code.name, res.reason)
        self._txs.append(stx)
        self._ids.append(tx_id)
        self._ids_set.add(tx_id)
        self._outcomes.append((res.tx_type, res.signer, res))
        if len(self._txs) >= self.genesis.params.max_block_txs:
            self.cut()
        return tx_id

    def cut(self) -> Block | None:
        """Seal the open batch into a signed block and persist it (None if empty)."""
        if not self._txs or self._info is None:
            return None
        txs = tuple(self._txs)
        header = BlockHeader(
            chain=self.genesis.chain_id,
            height=self._info.height,
            prev_hash=self.replica.head_hash,
            tx_root=tx_root(self.genesis.crypto, txs),
            tx_count=len(txs),
            time=self._info.time,
            orderer=self.identity.key_id,
        )
        block = self._sign(header, txs)
        try:
            self.replica.commit(block, header, self._ids, self._outcomes, self._overlay)
        finally:
            self._reset_batch()
        return block
