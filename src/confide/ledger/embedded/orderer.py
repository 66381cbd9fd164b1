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
from ..errors import LedgerError, TxRefused
from ..genesis import Genesis
from ..store import ChainStore
from ..tx import SignedTx
from .admission import Admission
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
        self._batch: Admission | None = None  # opened by the batch's first tx, fixed until cut

    def _sign(self, header: BlockHeader, txs: tuple[SignedTx, ...]) -> Block:
        return sign_block(self.identity, header, txs)

    def _genesis_block(self) -> None:
        g = self.genesis
        header = genesis_header(g.crypto, g.chain_id, g.genesis_time, g.digest(), orderer=g.orderer_key_id())
        self.replica.apply_block(self._sign(header, ()))

    @property
    def pending(self) -> int:
        return len(self._txs)

    def submit(self, stx: SignedTx) -> str:
        """Admit one tx into the open batch, or raise :class:`TxRefused`. Returns the tx id."""
        if self._batch is None:
            self._batch = Admission(self.replica, self.clock())
        tx_id, res = self._batch.admit(stx)
        if not res.ok:
            if not self._txs:
                self._batch = None  # an empty batch must not pin an old block time
            raise TxRefused(tx_id, int(res.code), res.code.name, res.reason)
        self._txs.append(stx)
        if len(self._txs) >= self.genesis.params.max_block_txs:
            self.cut()
        return tx_id

    def cut(self) -> Block | None:
        """Seal the open batch into a signed block and persist it (None if empty)."""
        batch = self._batch
        if not self._txs or batch is None:
            return None
        txs = tuple(self._txs)
        header = BlockHeader(
            chain=self.genesis.chain_id,
            height=batch.info.height,
            prev_hash=self.replica.head_hash,
            tx_root=tx_root(self.genesis.crypto, txs),
            tx_count=len(txs),
            time=batch.info.time,
            orderer=self.identity.key_id,
        )
        block = self._sign(header, txs)
        try:
            self.replica.commit(block, header, batch.ids, batch.outcomes, batch.overlay)
        finally:
            self._reset_batch()
        return block
