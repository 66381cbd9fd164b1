"""Blocks: a signed header committing to an ordered list of signed txs.

Header (canonical JSON)::

    {"chain": id, "height": n, "prev_hash": hex, "tx_root": hex, "tx_count": k,
     "time": ms, "orderer": key id, "genesis": hex digest (block 0 only, else "")}

A block derived from an EVM log (``ledger.backend = evm``) has ``"orderer": ""`` and one more field,
``"anchor"``: where it comes from on the EVM chain (``log:<address>`` for block 0, else
``<EVM block number>:<EVM block hash>``). Every node derives the same header bytes from the same
chain; the signature is by the node that derived the block (any node key of the genesis).

``block hash`` = suite hash of the header bytes; the orderer signs
``b"confide-block-v1\\x00" + header``. ``tx_root`` is the RFC 6962 Merkle root
over leaves ``tx_id || signature`` (so a changed signature changes the root,
not only the signature check). :func:`verify_block` is what every replica runs
before it applies anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..crypto import (
    CanonicalEncodingError,
    Identity,
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

__all__ = [
    "BLOCK_DOMAIN",
    "Block",
    "BlockHeader",
    "genesis_header",
    "sign_block",
    "tx_leaves",
    "verify_block",
]

BLOCK_DOMAIN = b"confide-block-v1\x00"
ZERO_HASH = "00" * 32
_HEADER_FIELDS = frozenset(
    {"chain", "height", "prev_hash", "tx_root", "tx_count", "time", "orderer", "genesis"}
)
_DERIVED_FIELDS = _HEADER_FIELDS | {"anchor"}


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
    anchor: str = ""  # derived (evm) blocks only

    def to_json(self) -> dict[str, Any]:
        out = {
            "chain": self.chain,
            "height": self.height,
            "prev_hash": self.prev_hash,
            "tx_root": self.tx_root,
            "tx_count": self.tx_count,
            "time": self.time,
            "orderer": self.orderer,
            "genesis": self.genesis,
        }
        if self.anchor:
            out["anchor"] = self.anchor
        return out

    def encode(self) -> bytes:
        return canonical_bytes(self.to_json())

    @classmethod
    def decode(cls, raw: bytes) -> BlockHeader:
        try:
            obj = parse_canonical(raw)
        except CanonicalEncodingError as exc:
            raise ValueError(f"header is not canonical JSON: {exc}") from None
        if not isinstance(obj, dict) or set(obj) not in (_HEADER_FIELDS, _DERIVED_FIELDS):
            raise ValueError("header fields are wrong")
        if "anchor" in obj and not obj["anchor"]:
            raise ValueError("an anchor field is never empty")
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
    derivers: Sequence[PublicKey] = (),
) -> BlockHeader:
    """Check header shape, orderer signature, hash link, height, time and tx root.

    ``derivers``: on an ``evm`` chain, the keys that may sign derived blocks (then every block must
    be derived: an anchor, no orderer); empty on an embedded chain (then no block may be derived).
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
    if derivers:
        _check_derived(block, header, derivers, expected)
    else:
        if header.anchor:
            raise ChainCorrupted(expected, "a derived (evm) block on a chain its orderer signs")
        try:
            orderer.verify(block.signature, BLOCK_DOMAIN + block.header_bytes)
        except InvalidSignature:
            raise ChainCorrupted(expected, "orderer signature does not verify") from None
        if header.orderer != orderer.key_id():
            raise ChainCorrupted(expected, "block names another orderer")
    if header.chain != chain:
        raise ChainCorrupted(expected, f"block is for chain {header.chain!r}, not {chain!r}")
    if header.prev_hash != prev_hash:
        raise ChainCorrupted(expected, "prev_hash does not link to the previous block")
    if prev is not None and header.time < prev.time:
        raise ChainCorrupted(expected, "block time goes backwards")
    if header.tx_count != len(block.txs):
        raise ChainCorrupted(expected, f"header says {header.tx_count} txs, block has {len(block.txs)}")
    if header.tx_root != tx_root(suite, block.txs):
        raise ChainCorrupted(expected, "Merkle root of the txs does not match the header")
    return header


def signed_by_any(keys: Sequence[PublicKey], signature: bytes, header_bytes: bytes) -> bool:
    """Whether one of ``keys`` signed this block header (a derived block: any consortium node)."""
    for key in keys:
        try:
            key.verify(signature, BLOCK_DOMAIN + header_bytes)
            return True
        except InvalidSignature:
            continue
    return False


def _check_derived(block: Block, header: BlockHeader, derivers: Sequence[PublicKey], height: int) -> None:
    if not header.anchor or header.orderer:
        raise ChainCorrupted(
            height, "on a chain ordered by an outside log every block is derived: an anchor and no orderer"
        )
    if not signed_by_any(derivers, block.signature, block.header_bytes):
        raise ChainCorrupted(height, "the derived block is not signed by a node of the consortium")


def sign_block(identity: Identity, header: BlockHeader, txs: tuple[SignedTx, ...]) -> Block:
    """A block: ``header`` signed by ``identity`` (the orderer, or on an evm chain the deriving node)."""
    raw = header.encode()
    return Block(raw, identity.sign(BLOCK_DOMAIN + raw), txs)


def genesis_header(
    suite: Suite, chain: str, genesis_time: int, genesis_digest: str, *, orderer: str, anchor: str = ""
) -> BlockHeader:
    """Block 0's header: no txs, the genesis file's digest; ``orderer`` empty on an evm chain."""
    return BlockHeader(
        chain=chain,
        height=0,
        prev_hash=ZERO_HASH,
        tx_root=tx_root(suite, []),
        tx_count=0,
        time=genesis_time,
        orderer=orderer,
        genesis=genesis_digest,
        anchor=anchor,
    )
