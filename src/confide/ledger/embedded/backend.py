"""The ``embedded`` backend: solo orderer + SQLite store in this process.

``memory`` is the same chain in an in-memory SQLite database (tests). The
network orderer service of the node issue wraps this class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ...crypto import Identity
from ..backend import Head, InclusionProof, LedgerBackend, Receipt, register_backend
from ..block import Block, tx_proof
from ..errors import TxRefused
from ..genesis import Genesis
from ..tx import SignedTx
from .orderer import SoloOrderer, wall_clock_ms
from .store import ChainDB

__all__ = ["EmbeddedBackend"]


class EmbeddedBackend(LedgerBackend):
    def __init__(
        self,
        *,
        genesis: Genesis,
        orderer_identity: Identity,
        path: str | Path = ":memory:",
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.genesis = genesis
        self.db = ChainDB(path)
        self.orderer = SoloOrderer(self.db, genesis, orderer_identity, clock=clock)

    def _receipt(self, tx_id: str) -> Receipt:
        row = self.db.find_tx(tx_id)
        assert row is not None
        return Receipt(tx_id, row["height"], row["idx"], row["code"], row["reason"])

    def submit(self, stx: SignedTx) -> Receipt:
        tx_id = self.orderer.submit(stx)
        self.orderer.cut()
        return self._receipt(tx_id)

    def submit_many(self, stxs: Sequence[SignedTx]) -> list[Receipt | Exception]:
        ids: list[str | TxRefused] = []
        for stx in stxs:
            try:
                ids.append(self.orderer.submit(stx))
            except TxRefused as exc:
                ids.append(exc)
        self.orderer.cut()
        return [i if isinstance(i, Exception) else self._receipt(i) for i in ids]

    def blocks_since(self, height: int, limit: int = 100) -> list[Block]:
        return self.db.blocks_since(height, limit)

    def head(self) -> Head:
        head = self.db.head()
        assert head is not None
        return Head(head[0], head[1], head[2].time)

    def proof(self, tx_id: str) -> InclusionProof:
        row = self.db.find_tx(tx_id)
        if row is None:
            raise KeyError(f"tx {tx_id} is not on this chain")
        block = self.db.get_block(row["height"])
        assert block is not None
        suite = self.genesis.crypto
        i = row["idx"]
        leaf_data = suite.hash(block.txs[i].body) + block.txs[i].signature
        return InclusionProof(
            tx_id=tx_id,
            height=row["height"],
            index=i,
            tree_size=len(block.txs),
            leaf=leaf_data.hex(),
            path=[p.hex() for p in tx_proof(suite, block.txs, i)],
            header=block.header_bytes.decode("utf-8"),
            orderer_sig=block.signature.hex(),
        )

    def close(self) -> None:
        self.db.close()


def _memory(**kwargs: object) -> EmbeddedBackend:
    kwargs.pop("path", None)
    return EmbeddedBackend(path=":memory:", **kwargs)  # type: ignore[arg-type]


register_backend("embedded", EmbeddedBackend)
register_backend("memory", _memory)
