"""Blocks: a signed header committing to an ordered list of signed txs.

Header (canonical JSON)::

    {"chain": id, "height": n, "prev_hash": hex, "tx_root": hex, "tx_count": k,
     "time": ms, "orderer": key id, "genesis": hex digest (block 0 only, else "")}

``block hash`` = suite hash of the header bytes; the orderer signs
``b"confide-block-v1\\x00" + header``. ``tx_root`` is the RFC 6962 Merkle root
over leaves ``tx_id || signature`` (so a changed signature changes the root,
not only the signature check). :func:`verify_block` is what every replica runs
before it applies anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..crypto import (
    CanonicalEncodingError,
    InvalidSignature,
    PublicKey,
    Suite,
    canonical_bytes,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    parse_canonical,
)
from .errors import ChainCorrupted
from .tx import SignedTx

__all__ = ["BLOCK_DOMAIN", "Block", "BlockHeader", "tx_leaves", "verify_block"]

BLOCK_DOMAIN = b"confide-block-v1\x00"
ZERO_HASH = "00" * 32
_HEADER_FIELDS = frozenset(
    {"chain", "height", "prev_hash", "tx_root", "tx_count", "time", "orderer", "genesis"}
)


@dataclass(frozen=True, slots=True)
class BlockHeader:
    chain: str
    height: int
    prev_hash: str
    tx_root: str
    tx_count: int
    time: int
    orderer: str
    genesis: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "height": self.height,
            "prev_hash": self.prev_hash,
            "tx_root": self.tx_root,
            "tx_count": self.tx_count,
            "time": self.time,
            "orderer": self.orderer,
            "genesis": self.genesis,
        }

    def encode(self) -> bytes:
        return canonical_bytes(self.to_json())

    @classmethod
    def decode(cls, raw: bytes) -> BlockHeader:
        try:
            obj = parse_canonical(raw)
        except CanonicalEncodingError as exc:
            raise ValueError(f"header is not canonical JSON: {exc}") from None
        if not isinstance(obj, dict) or set(obj) != _HEADER_FIELDS:
            raise ValueError("header fields are wrong")
        return cls(**obj)


@dataclass(frozen=True, slots=True)
class Block:
    header_bytes: bytes
    signature: bytes
    txs: tuple[SignedTx, ...]

    @property
    def header(self) -> BlockHeader:
        return BlockHeader.decode(self.header_bytes)

    def block_hash(self, suite: Suite) -> str:
        return suite.hash(self.header_bytes).hex()

    def to_json(self) -> dict[str, Any]:
        return {
            "header": self.header_bytes.decode("utf-8"),
            "sig": self.signature.hex(),
            "txs": [t.to_json() for t in self.txs],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Block:
        return cls(
            obj["header"].encode("utf-8"),
            bytes.fromhex(obj["sig"]),
            tuple(SignedTx.from_json(t) for t in obj["txs"]),
        )


def tx_leaves(suite: Suite, txs: tuple[SignedTx, ...] | list[SignedTx]) -> list[bytes]:
    h = suite.hash
    return [leaf_hash(h, h(t.body) + t.signature) for t in txs]


def tx_root(suite: Suite, txs: tuple[SignedTx, ...] | list[SignedTx]) -> str:
    return merkle_root(suite.hash, tx_leaves(suite, txs)).hex()


def tx_proof(suite: Suite, txs: tuple[SignedTx, ...], index: int) -> list[bytes]:
    return inclusion_proof(suite.hash, tx_leaves(suite, txs), index)


def verify_block(
    suite: Suite,
    block: Block,
    *,
    chain: str,
    orderer: PublicKey,
    prev: BlockHeader | None,
    prev_hash: str,
) -> BlockHeader:
    """Check header shape, orderer signature, hash link, height, time and tx root.

    Raises :class:`ChainCorrupted` naming the block height. Tx signatures are
    checked by the replica as it applies (it needs the signers' keys from state).
    """
    expected = 0 if prev is None else prev.height + 1
    try:
        header = block.header
    except (ValueError, TypeError) as exc:
        raise ChainCorrupted(expected, f"header does not parse: {exc}") from None
    if header.height != expected:
        raise ChainCorrupted(expected, f"height is {header.height}, expected {expected}")
    try:
        orderer.verify(block.signature, BLOCK_DOMAIN + block.header_bytes)
    except InvalidSignature:
        raise ChainCorrupted(expected, "orderer signature does not verify") from None
    if header.chain != chain:
        raise ChainCorrupted(expected, f"block is for chain {header.chain!r}, not {chain!r}")
    if header.orderer != orderer.key_id():
        raise ChainCorrupted(expected, "block names another orderer")
    if header.prev_hash != prev_hash:
        raise ChainCorrupted(expected, "prev_hash does not link to the previous block")
    if prev is not None and header.time < prev.time:
        raise ChainCorrupted(expected, "block time goes backwards")
    if header.tx_count != len(block.txs):
        raise ChainCorrupted(expected, f"header says {header.tx_count} txs, block has {len(block.txs)}")
    if header.tx_root != tx_root(suite, block.txs):
        raise ChainCorrupted(expected, "Merkle root of the txs does not match the header")
    return header
