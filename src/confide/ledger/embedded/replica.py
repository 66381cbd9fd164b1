"""Replica: verify every block, replay it through the contract, persist atomically.

Any node (and the orderer itself) holds a replica. Before applying a block it
checks the orderer signature, the hash link, height, time and the Merkle root
(:func:`verify_block`); while applying it verifies every tx signature. On the
embedded chain the orderer admits only signed txs, so a bad tx signature inside
an orderer-signed block means tampering and the whole block is refused.
"""

from __future__ import annotations

from ...crypto import PublicKey
from ..block import ZERO_HASH, Block, BlockHeader, verify_block
from ..codes import Code, Result
from ..contract import BlockInfo, Contract, Overlay
from ..contract.state import ReadCache
from ..errors import ChainCorrupted
from ..genesis import Genesis, block_derivers
from ..store import ChainStore
from ..tx import SignedTx
from .store import DBState

__all__ = ["Replica"]


class Replica:
    def __init__(self, db: ChainStore, genesis: Genesis) -> None:
        self.db = db
        self.genesis = genesis
        self.suite = genesis.crypto
        self.contract = Contract(genesis)
        self.state = DBState(db)
        self.orderer: PublicKey = self.suite.load_public(bytes.fromhex(genesis.orderer_public_key))
        self.derivers: list[PublicKey] = [
            self.suite.load_public(bytes.fromhex(k)) for k in block_derivers(genesis)
        ]
        head = db.head()
        self.height: int = -1 if head is None else head[0]
        self.head_hash: str = ZERO_HASH if head is None else head[1]
        self.head_header: BlockHeader | None = None if head is None else head[2]
        if head is not None:
            stored = db.get_meta("genesis_digest")
            if stored is not None and stored.decode() != genesis.digest():
                raise ChainCorrupted(0, "this store was created from another genesis file")

    def execute_block(
        self, header: BlockHeader, txs: tuple[SignedTx, ...] | list[SignedTx]
    ) -> tuple[Overlay, list[str], list[tuple[str, str, Result]]]:
        """Run a block's txs on a fresh overlay. Returns (writes, tx ids, outcomes)."""
        overlay = Overlay(ReadCache(self.state))  # committed state is fixed during the block
        ids: list[str] = []
        outcomes: list[tuple[str, str, Result]] = []
        in_block: set[str] = set()

        def seen(tx_id: str) -> bool:
            return tx_id in in_block or self.db.has_tx(tx_id)

        info = BlockInfo(header.height, header.time)
        for i, stx in enumerate(txs):
            tx_id, res = self.contract.execute(overlay, stx, info, seen)
            if res.code is Code.BAD_SIGNATURE:
                raise ChainCorrupted(header.height, f"tx {i} ({tx_id[:16]}): signature does not verify")
            in_block.add(tx_id)
            ids.append(tx_id)
            outcomes.append((res.tx_type, res.signer, res))
        return overlay, ids, outcomes

    def apply_block(self, block: Block) -> list[Result]:
        """Verify and apply one block; raises :class:`ChainCorrupted`; nothing half-applied."""
        header = verify_block(
            self.suite,
            block,
            chain=self.genesis.chain_id,
            orderer=self.orderer,
            prev=self.head_header,
            prev_hash=self.head_hash,
            derivers=self.derivers,
        )
        if header.height == 0:
            if header.genesis != self.genesis.digest() or block.txs:
                raise ChainCorrupted(0, "genesis block does not match the genesis file")
            overlay = Overlay(self.state)
            ids: list[str] = []
            outcomes: list[tuple[str, str, Result]] = []
            self.contract.genesis_writes(overlay)
        else:
            if header.genesis:
                raise ChainCorrupted(header.height, "only block 0 may carry a genesis digest")
            overlay, ids, outcomes = self.execute_block(header, block.txs)
        self.commit(block, header, ids, outcomes, overlay)
        return [r for _, _, r in outcomes]

    def commit(
        self,
        block: Block,
        header: BlockHeader,
        ids: list[str],
        outcomes: list[tuple[str, str, Result]],
        overlay: Overlay,
    ) -> None:
        self.db.append_block(block, header, self.suite, ids, outcomes, overlay.writes)
        if header.height == 0:
            self.db.set_meta("genesis_digest", self.genesis.digest().encode())
            self.db.set_meta("genesis", self.genesis.canonical())
        self.height = header.height
        self.head_hash = block.block_hash(self.suite)
        self.head_header = header

    def state_root(self) -> str:
        return self.db.state_root(self.suite)
