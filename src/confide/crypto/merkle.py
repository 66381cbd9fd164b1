"""Merkle tree hashing and inclusion proofs per RFC 6962 / RFC 9162 §2.1.

Leaves are hashed as ``H(0x00 || data)`` and interior nodes as
``H(0x01 || left || right)``; odd nodes are promoted, never duplicated (the
Bitcoin duplicate-leaf ambiguity, CVE-2012-2459, cannot arise). ``H`` is the
consortium suite's hash, so a ``gm`` consortium gets SM3 trees.
Known-answer vectors from the Certificate Transparency reference tree live in
``tests/crypto/vectors/merkle_rfc6962.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["inclusion_proof", "leaf_hash", "merkle_root", "verify_inclusion"]

HashFn = Callable[[bytes], bytes]


def leaf_hash(hash_fn: HashFn, data: bytes) -> bytes:
    return hash_fn(b"\x00" + data)


def _node(hash_fn: HashFn, left: bytes, right: bytes) -> bytes:
    return hash_fn(b"\x01" + left + right)


def merkle_root(hash_fn: HashFn, leaf_hashes: Sequence[bytes]) -> bytes:
    """Root over already-hashed leaves (empty tree: hash of the empty string).

    Computed bottom-up level by level; for RFC 6962's left-heavy split this is
    equivalent to pairing adjacent nodes and promoting a trailing odd one.
    """
    if not leaf_hashes:
        return hash_fn(b"")
    level = list(leaf_hashes)
    while len(level) > 1:
        nxt = [_node(hash_fn, level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(hash_fn: HashFn, leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path for leaf ``index`` (RFC 9162 §2.1.3.1), ordered leaf to root."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise IndexError(f"leaf index {index} outside a tree of {n} leaves")
    proof: list[bytes] = []
    level = list(leaf_hashes)
    i = index
    while len(level) > 1:
        sibling = i ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        nxt = [_node(hash_fn, level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        i //= 2
    return proof


def verify_inclusion(
    hash_fn: HashFn,
    leaf: bytes,
    index: int,
    tree_size: int,
    proof: Sequence[bytes],
    root: bytes,
) -> bool:
    """Check an audit path (RFC 9162 §2.1.3.2). ``leaf`` is the leaf *hash*."""
    if not 0 <= index < tree_size:
        return False
    fn, sn = index, tree_size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(hash_fn, p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(hash_fn, r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
