"""What a replica needs from its storage: the ``ChainStore`` interface.

Two implementations: ``embedded.store.ChainDB`` (sqlite3, the orderer's and
the default replica store, fastest) and ``confide.node.storage`` (SQLAlchemy:
SQLite or PostgreSQL by URL, for org nodes). ``tests/ledger/test_store_contract.py``
runs one suite against each. Every write goes through :meth:`append_block`, one
database transaction per block.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

from ..crypto import Suite
from .block import Block, BlockHeader
from .codes import Result

__all__ = ["ChainStore", "StoredTx"]


class StoredTx(dict[str, Any]):
    """A tx row: tx_id, height, idx, type, signer, code, reason, events (+ body, sig when asked)."""


class ChainStore(ABC):
    """Blocks, tx outcomes and contract state of one node."""

    # -- meta
    @abstractmethod
    def get_meta(self, key: str) -> bytes | None: ...
    @abstractmethod
    def set_meta(self, key: str, value: bytes) -> None: ...

    # -- blocks
    @abstractmethod
    def head(self) -> tuple[int, str, BlockHeader] | None:
        """(height, block hash, header) of the latest block, or None for an empty store."""

    @abstractmethod
    def get_block(self, height: int) -> Block | None: ...
    @abstractmethod
    def stored_hash(self, height: int) -> str | None: ...
    @abstractmethod
    def block_heights(self) -> list[int]: ...

    def blocks_since(self, height: int, limit: int = 100) -> list[Block]:
        """Blocks with height > ``height``, ascending, at most ``limit``."""
        out = []
        for h in range(height + 1, height + 1 + limit):
            b = self.get_block(h)
            if b is None:
                break
            out.append(b)
        return out

    @abstractmethod
    def append_block(
        self,
        block: Block,
        header: BlockHeader,
        suite: Suite,
        tx_ids: Sequence[str],
        results: Sequence[tuple[str, str, Result]],
        writes: dict[str, bytes],
    ) -> None:
        """Persist a verified block, its tx outcomes and state writes in ONE transaction.

        ``results`` holds (type, signer, result) per tx in block order; a value of
        ``b""`` in ``writes`` deletes the key.
        """

    # -- txs
    @abstractmethod
    def has_tx(self, tx_id: str) -> bool: ...
    @abstractmethod
    def find_tx(self, tx_id: str) -> StoredTx | None:
        """First occurrence, with ``body`` and ``sig``."""

    @abstractmethod
    def txs_in_block(self, height: int) -> list[StoredTx]:
        """Rows of one block in index order, with ``body`` and ``sig``."""

    @abstractmethod
    def iter_txs(self) -> Iterator[StoredTx]:
        """All rows in chain order (without body/sig)."""

    # -- state
    @abstractmethod
    def state_get(self, key: str) -> bytes | None: ...
    @abstractmethod
    def state_keys(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix``, in code-point (= UTF-8 byte) order."""

    @abstractmethod
    def state_items(self) -> Iterator[tuple[str, bytes]]:
        """All (key, value) in key order."""

    def state_root(self, suite: Suite) -> str:
        """Merkle root recomputed from the stored keys and values (never cached)."""
        from .contract.state import state_leaf, state_root

        return state_root(suite, [state_leaf(suite, k, v) for k, v in self.state_items()])

    @abstractmethod
    def close(self) -> None: ...
