"""Re-verify one stored block now, from a node's own store: what the block explorer shows.

The replica verified every block once, before applying it; this re-runs the
same checks on what is stored today (a database edited since then shows up).
Each check is named, so a reader sees which one failed:

- ``block_hash``: the stored block hash is the suite hash of the stored header;
- ``prev_link``: the header's ``prev_hash`` is the stored hash of the previous block;
- ``orderer_signature``: the orderer's signature on the header verifies with the genesis orderer key;
- ``tx_root``: the header's tx count and Merkle root match the stored txs;
- ``tx_ids``: each stored tx id is the hash of its stored body;
- ``tx_signatures``: each tx signature verifies with its signer's public key as recorded on the ledger
  (the member record stays after ``member.remove``, so a removed member's old txs still verify);
- ``verify_block``: the replica's own header check (:func:`confide.ledger.block.verify_block`,
  which also checks height, chain id and time order), reporting its error text;
- ``genesis`` (block 0 only): the header names this node's genesis file.

Everything uses the ledger's own primitives (``Block.block_hash``, ``tx_root``,
``verify_block``, the suite's public keys); no crypto of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..crypto import InvalidKey, InvalidSignature, PublicKey
from ..ledger.block import BLOCK_DOMAIN, ZERO_HASH, Block, BlockHeader, signed_by_any, tx_root, verify_block
from ..ledger.embedded import Replica
from ..ledger.errors import ChainCorrupted
from ..ledger.tx import TX_DOMAIN, decode_tx

__all__ = ["Check", "checks_json", "verify_stored_block"]

_MAX_LISTED = 5  # failing txs named in one check's detail


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def checks_json(checks: list[Check]) -> dict[str, Any]:
    """``{"ok": all passed, "checks": [{"name", "ok", "detail"}]}``."""
    return {
        "ok": all(c.ok for c in checks),
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
    }


def _listed(problems: list[str]) -> str:
    more = len(problems) - _MAX_LISTED
    return "; ".join(problems[:_MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")


def verify_stored_block(replica: Replica, height: int) -> list[Check] | None:
    """The checks above for block ``height`` of ``replica``'s store; None if it holds no such block."""
    db, suite = replica.db, replica.suite
    block = db.get_block(height)
    if block is None:
        return None
    checks = [_block_hash(db.stored_hash(height), block.block_hash(suite))]
    try:
        header = block.header
    except (ValueError, TypeError) as exc:
        checks.append(Check("header", False, f"header does not parse: {exc}"))
        return checks
    prev_hash, prev = _previous(replica, height)
    checks.append(_prev_link(header, prev_hash))
    checks.append(_orderer_signature(replica, block, header))
    checks.append(_tx_root(replica, block, header))
    checks.append(_tx_ids(replica, block, height))
    checks.append(_tx_signatures(replica, block))
    try:
        verify_block(
            suite,
            block,
            chain=replica.genesis.chain_id,
            orderer=replica.orderer,
            prev=prev,
            prev_hash=prev_hash,
            derivers=replica.derivers,
        )
        checks.append(Check("verify_block", True, "the replica's header verification passes"))
    except ChainCorrupted as exc:
        checks.append(Check("verify_block", False, str(exc)))
    if height == 0:
        ok = header.genesis == replica.genesis.digest() and not block.txs
        detail = "names this node's genesis file" if ok else "does not match this node's genesis file"
        checks.append(Check("genesis", ok, f"block 0 {detail}"))
    return checks


def _block_hash(stored: str | None, computed: str) -> Check:
    if stored == computed:
        return Check("block_hash", True, f"stored hash {computed[:16]}... is the hash of the header")
    detail = f"stored hash {str(stored)[:16]}... is not the hash of the stored header ({computed[:16]}...)"
    return Check("block_hash", False, detail)


def _previous(replica: Replica, height: int) -> tuple[str, BlockHeader | None]:
    """(stored hash, header) of block ``height - 1``; (zero hash, None) before block 0."""
    if height == 0:
        return ZERO_HASH, None
    prev_block = replica.db.get_block(height - 1)
    prev_hash = replica.db.stored_hash(height - 1)
    if prev_block is None or prev_hash is None:
        return "", None
    try:
        return prev_hash, prev_block.header
    except (ValueError, TypeError):
        return prev_hash, None


def _prev_link(header: BlockHeader, prev_hash: str) -> Check:
    what = (
        "the zero hash (block 0)" if header.height == 0 else f"the stored hash of block {header.height - 1}"
    )
    if not prev_hash:
        return Check("prev_link", False, f"block {header.height - 1} is missing from the store")
    if header.prev_hash == prev_hash:
        return Check("prev_link", True, f"prev_hash is {what}")
    return Check(
        "prev_link", False, f"prev_hash {header.prev_hash[:16]}... is not {what} ({prev_hash[:16]}...)"
    )


def _orderer_signature(replica: Replica, block: Block, header: BlockHeader) -> Check:
    if replica.derivers:  # a derived chain: from the log, signed by the node that derived it
        if signed_by_any(replica.derivers, block.signature, block.header_bytes):
            return Check(
                "orderer_signature",
                True,
                f"derived from the ordering log ({header.anchor}), signed by a node",
            )
        return Check(
            "orderer_signature", False, "the derived block is not signed by a node of the consortium"
        )
    try:
        replica.orderer.verify(block.signature, BLOCK_DOMAIN + block.header_bytes)
    except InvalidSignature:
        return Check("orderer_signature", False, "the orderer signature on the header does not verify")
    if header.orderer != replica.orderer.key_id():
        return Check("orderer_signature", False, "the header names another orderer than the genesis file")
    return Check("orderer_signature", True, "signed by the genesis orderer key")


def _tx_root(replica: Replica, block: Block, header: BlockHeader) -> Check:
    if header.tx_count != len(block.txs):
        return Check("tx_root", False, f"header says {header.tx_count} txs, the store holds {len(block.txs)}")
    root = tx_root(replica.suite, block.txs)
    if root != header.tx_root:
        return Check("tx_root", False, f"Merkle root of the stored txs ({root[:16]}...) is not the header's")
    return Check("tx_root", True, f"Merkle root over {len(block.txs)} txs matches the header")


def _tx_ids(replica: Replica, block: Block, height: int) -> Check:
    rows = replica.db.txs_in_block(height)
    problems = [
        f"tx {row['idx']}: stored id {str(row['tx_id'])[:16]}... is not the hash of its body"
        for row, stx in zip(rows, block.txs, strict=False)
        if row["tx_id"] != stx.tx_id(replica.suite)
    ]
    if len(rows) != len(block.txs):
        problems.append(f"{len(rows)} tx rows, {len(block.txs)} txs")
    if problems:
        return Check("tx_ids", False, _listed(problems))
    return Check("tx_ids", True, f"{len(rows)} stored tx ids are the hashes of their bodies")


def _signer_key(replica: Replica, key_id: str) -> PublicKey | None:
    """The key recorded in ``member/<key_id>``, active or removed; None if there is no usable one."""
    member = replica.state.get(f"member/{key_id}")
    if member is None:
        return None
    try:
        key = replica.suite.load_public(bytes.fromhex(member["public_key"]))
    except (InvalidKey, ValueError, KeyError, TypeError):
        return None
    return key if key.key_id() == key_id else None  # a record holding another key than its id names


def _tx_signatures(replica: Replica, block: Block) -> Check:
    problems = []
    keys: dict[str, PublicKey | None] = {}
    for i, stx in enumerate(block.txs):
        try:
            tx = decode_tx(stx, replica.suite)
        except ValueError as exc:
            problems.append(f"tx {i}: body does not parse ({exc})")
            continue
        if tx.signer not in keys:
            keys[tx.signer] = _signer_key(replica, tx.signer)
        key = keys[tx.signer]
        if key is None:
            problems.append(f"tx {i}: signer {tx.signer[:16]}... has no member key on the ledger")
            continue
        try:
            key.verify(stx.signature, TX_DOMAIN + stx.body)
        except InvalidSignature:
            problems.append(f"tx {i} ({tx.tx_id[:16]}...): signature does not verify")
    if problems:
        return Check("tx_signatures", False, _listed(problems))
    return Check("tx_signatures", True, f"all {len(block.txs)} tx signatures verify")
