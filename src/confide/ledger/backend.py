"""The ledger backend interface every chain implements, and its registry.

A backend orders and stores signed txs; it does not interpret them (the
contract does, on every replica). Four operations (DESIGN §3): ``submit``,
``blocks_since``, ``head`` and ``proof``. The embedded SQLite chain is the
default; EVM chains, ChainMaker and Fabric implement the same interface later,
and ``tests/ledger/test_backend_contract.py`` runs one suite against each.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..crypto import Suite, leaf_hash, verify_inclusion
from .block import Block, BlockHeader, signed_by_any
from .errors import UnknownBackend
from .genesis import Genesis, block_derivers
from .tx import SignedTx

__all__ = [
    "Head",
    "InclusionProof",
    "LedgerBackend",
    "Receipt",
    "available_backends",
    "open_backend",
    "register_backend",
    "verify_proof",
]


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where a submitted tx landed and what the contract said."""

    tx_id: str
    height: int
    index: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Head:
    height: int
    hash: str
    time: int


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Self-contained evidence that a tx is in a block the orderer signed."""

    tx_id: str
    height: int
    index: int
    tree_size: int
    leaf: str
    path: list[str]
    header: str
    orderer_sig: str

    def to_json(self) -> dict[str, Any]:
        return {
            "tx_id": self.tx_id,
            "height": self.height,
            "index": self.index,
            "tree_size": self.tree_size,
            "leaf": self.leaf,
            "path": self.path,
            "header": self.header,
            "orderer_sig": self.orderer_sig,
        }


def verify_proof(genesis: Genesis, proof: InclusionProof) -> bool:
    """Check the orderer's signature on the header and the Merkle path to ``tx_root``."""
    suite: Suite = genesis.crypto
    # embedded: the orderer signed the header; evm: the node that derived the block did
    signers = block_derivers(genesis) or [genesis.orderer_public_key]
    header_bytes = proof.header.encode("utf-8")
    try:
        sig = bytes.fromhex(proof.orderer_sig)
        header = BlockHeader.decode(header_bytes)
    except ValueError:
        return False
    if not signed_by_any([suite.load_public(bytes.fromhex(k)) for k in signers], sig, header_bytes):
        return False
    if header.height != proof.height or header.tx_count != proof.tree_size:
        return False
    if not proof.leaf.startswith(proof.tx_id):
        return False

    leaf = leaf_hash(suite.hash, bytes.fromhex(proof.leaf))
    return verify_inclusion(
        suite.hash,
        leaf,
        proof.index,
        proof.tree_size,
        [bytes.fromhex(p) for p in proof.path],
        bytes.fromhex(header.tx_root),
    )


class LedgerBackend(ABC):
    """What the node needs from a chain."""

    genesis: Genesis

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    @abstractmethod
    def submit(self, stx: SignedTx) -> Receipt:
        """Order one tx and wait until it is committed; raise ``TxRefused`` if refused."""

    @abstractmethod
    def submit_many(self, stxs: Sequence[SignedTx]) -> list[Receipt | Exception]:
        """Order many txs (batched into blocks); one receipt or refusal per tx, in order."""

    @abstractmethod
    def blocks_since(self, height: int, limit: int = 100) -> list[Block]:
        """Blocks with height greater than ``height``, ascending."""

    @abstractmethod
    def head(self) -> Head:
        """The latest committed block."""

    @abstractmethod
    def proof(self, tx_id: str) -> InclusionProof:
        """Inclusion proof of a committed tx; ``KeyError`` if unknown."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


_REGISTRY: dict[str, Callable[..., LedgerBackend]] = {}


def register_backend(name: str, factory: Callable[..., LedgerBackend]) -> None:
    _REGISTRY[name] = factory


def available_backends() -> list[str]:
    return sorted(_REGISTRY)


def open_backend(name: str, **kwargs: Any) -> LedgerBackend:
    """Instantiate a backend by name (raises :class:`UnknownBackend` listing valid names)."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise UnknownBackend(name, available_backends())
    return factory(**kwargs)
