"""Tests of RFC 6962 / RFC 9162 Merkle trees (``confide.crypto.merkle``).

Known answers from the Certificate Transparency reference tree live in ``vectors/merkle_rfc6962.json``
(with their sources). Beyond them, roots and audit paths for every tree size up to 40 are compared
with a direct transcription of the recursive RFC 6962 section 2.1 definitions (``MTH`` and ``PATH``),
and every corruption of a valid proof must make ``verify_inclusion`` return False.

A proof for size ``n`` may also verify for some larger claimed size with the same root; the ledger
binds the root to its size through the signed block header, so that is deliberately not asserted
against here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from confide.crypto.merkle import inclusion_proof, leaf_hash, merkle_root, verify_inclusion
from confide.crypto.suite import get_suite

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "vectors" / "merkle_rfc6962.json").read_text())
HASH = get_suite("default").hash
LEAVES = [bytes.fromhex(h) for h in VECTORS["leaves"]]
LEAF_HASHES = [bytes.fromhex(h) for h in VECTORS["node_hashes"][0]]
MAX_SIZE = 40


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _reference_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH over raw leaf inputs, recursive split at the largest power of two < n."""
    n = len(leaves)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + leaves[0])
    k = 1 << ((n - 1).bit_length() - 1)
    return _sha256(b"\x01" + _reference_mth(leaves[:k]) + _reference_mth(leaves[k:]))


def _reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1 PATH(m, D[n]), ordered leaf to root."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*_reference_path(m, leaves[:k]), _reference_mth(leaves[k:])]
    return [*_reference_path(m - k, leaves[k:]), _reference_mth(leaves[:k])]


def _synthetic_leaves(n: int) -> list[bytes]:
    """Distinct leaf inputs of varying length."""
    return [f"leaf-{i}".encode() * (1 + i % 3) for i in range(n)]


def _flip_bit(data: bytes, byte: int, bit: int) -> bytes:
    out = bytearray(data)
    out[byte] ^= 1 << bit
    return bytes(out)


SIZES = range(1, MAX_SIZE + 1)


class _Tree:
    """A tree of ``size`` synthetic leaves with its root and every audit path."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hashes = [leaf_hash(_sha256, leaf) for leaf in _synthetic_leaves(size)]
        self.root = merkle_root(_sha256, self.hashes)
        self.proofs = [inclusion_proof(_sha256, self.hashes, i) for i in range(size)]

    @staticmethod
    def verify(leaf: bytes, index: int, tree_size: int, proof: list[bytes], root: bytes) -> bool:
        return verify_inclusion(_sha256, leaf, index, tree_size, proof, root)


# --- known answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(LEAVES)))
def test_leaf_hash_matches_reference(index: int) -> None:
    # Prepare
    expected = LEAF_HASHES[index]

    # Execute
    got = leaf_hash(HASH, LEAVES[index])

    # Assert
    assert got == expected


@pytest.mark.parametrize("size", range(len(VECTORS["roots"])))
def test_merkle_root_matches_reference_root(size: int) -> None:
    # Prepare
    hashes = [leaf_hash(HASH, leaf) for leaf in LEAVES[:size]]

    # Execute
    root = merkle_root(HASH, hashes)

    # Assert
    assert root.hex() == VECTORS["roots"][size]


@pytest.mark.parametrize(
    ("level", "k"),
    [(level, k) for level, row in enumerate(VECTORS["node_hashes"]) for k in range(len(row))],
)
def test_merkle_root_of_complete_subtree_matches_node_hash(level: int, k: int) -> None:
    # Prepare
    width = 1 << level
    subtree = LEAF_HASHES[k * width : (k + 1) * width]

    # Execute
    root = merkle_root(HASH, subtree)

    # Assert
    assert root.hex() == VECTORS["node_hashes"][level][k]


def test_empty_tree_root_is_hash_of_empty_string() -> None:
    # Prepare
    expected = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

    # Execute
    root = merkle_root(HASH, [])

    # Assert
    assert root == expected


@pytest.mark.parametrize(
    "vector",
    VECTORS["inclusion_proofs"],
    ids=[f"index{v['index']}-size{v['tree_size']}" for v in VECTORS["inclusion_proofs"]],
)
def test_inclusion_proof_matches_reference_path(vector: dict[str, Any]) -> None:
    # Prepare
    hashes = LEAF_HASHES[: vector["tree_size"]]

    # Execute
    proof = inclusion_proof(HASH, hashes, vector["index"])

    # Assert
    assert [p.hex() for p in proof] == vector["path"]


@pytest.mark.parametrize(
    "vector",
    VECTORS["inclusion_proofs"],
    ids=[f"index{v['index']}-size{v['tree_size']}" for v in VECTORS["inclusion_proofs"]],
)
def test_reference_path_verifies_against_reference_root(vector: dict[str, Any]) -> None:
    # Prepare
    size, index = vector["tree_size"], vector["index"]
    path = [bytes.fromhex(h) for h in vector["path"]]
    root = bytes.fromhex(VECTORS["roots"][size])

    # Execute
    ok = verify_inclusion(HASH, LEAF_HASHES[index], index, size, path, root)

    # Assert
    assert ok is True


# --- agreement with the recursive RFC 6962 definition, sizes 0..40 ---------------------------------


@pytest.mark.parametrize("size", range(MAX_SIZE + 1))
def test_merkle_root_equals_recursive_mth(size: int) -> None:
    # Prepare
    leaves = _synthetic_leaves(size)

    # Execute
    root = merkle_root(_sha256, [leaf_hash(_sha256, leaf) for leaf in leaves])

    # Assert
    assert root == _reference_mth(leaves)


@pytest.mark.parametrize("size", SIZES)
def test_every_leaf_proof_equals_recursive_path(size: int) -> None:
    # Prepare
    leaves = _synthetic_leaves(size)
    hashes = [leaf_hash(_sha256, leaf) for leaf in leaves]

    # Execute
    mismatched = [i for i in range(size) if inclusion_proof(_sha256, hashes, i) != _reference_path(i, leaves)]

    # Assert
    assert mismatched == []


@pytest.mark.parametrize("size", SIZES)
def test_every_leaf_proof_verifies(size: int) -> None:
    # Prepare
    tree = _Tree(size)

    # Execute
    rejected = [i for i in range(size) if not tree.verify(tree.hashes[i], i, size, tree.proofs[i], tree.root)]

    # Assert
    assert rejected == []


# --- corrupted proofs are refused -----------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_proof_fails_for_wrong_leaf(size: int) -> None:
    # Prepare
    tree = _Tree(size)
    cases = [
        (i, wrong)
        for i, h in enumerate(tree.hashes)
        for wrong in (leaf_hash(_sha256, b"not in the tree"), h[::-1], b"", _flip_bit(h, 31, 0))
    ]

    # Execute
    accepted = [(i, wrong) for i, wrong in cases if tree.verify(wrong, i, size, tree.proofs[i], tree.root)]

    # Assert
    assert accepted == []


@pytest.mark.parametrize("size", SIZES)
def test_proof_fails_for_every_other_index(size: int) -> None:
    # Prepare
    tree = _Tree(size)
    cases = [(i, j) for i in range(size) for j in range(-1, size + 2) if j != i]

    # Execute
    accepted = [(i, j) for i, j in cases if tree.verify(tree.hashes[i], j, size, tree.proofs[i], tree.root)]

    # Assert
    assert accepted == []


@pytest.mark.parametrize("size", SIZES)
def test_proof_fails_when_truncated_or_extended(size: int) -> None:
    # Prepare
    tree = _Tree(size)
    cases = []
    for i, proof in enumerate(tree.proofs):
        variants = [
            [*proof, tree.root],
            [*proof, b""],
            [*proof, tree.hashes[i]],
            [tree.root, *proof],
            [b"", *proof],
        ]
        if proof:
            variants += [proof[:-1], proof[1:], [*proof[:1], _sha256(b"inserted"), *proof[1:]]]
        cases += [(i, v) for v in variants]

    # Execute
    accepted = [(i, v) for i, v in cases if tree.verify(tree.hashes[i], i, size, v, tree.root)]

    # Assert
    assert accepted == []


@pytest.mark.parametrize("size", SIZES)
def test_proof_longer_than_claimed_tree_fails_even_with_matching_root(size: int) -> None:
    # Prepare: an extra element p on top, with the root recomputed as H(0x01 || p || root), describes a
    # taller tree than ``size`` leaves can form, so it must not verify for ``size``.
    tree = _Tree(size)
    extra = _sha256(b"extra")
    taller_root = _sha256(b"\x01" + extra + tree.root)

    # Execute
    accepted = [
        i for i in range(size) if tree.verify(tree.hashes[i], i, size, [*tree.proofs[i], extra], taller_root)
    ]

    # Assert
    assert accepted == []


@pytest.mark.parametrize("size", SIZES)
def test_proof_fails_with_flipped_bit_in_any_element(size: int) -> None:
    # Prepare
    tree = _Tree(size)
    cases = [
        (i, [*proof[:k], _flip_bit(proof[k], byte, bit), *proof[k + 1 :]])
        for i, proof in enumerate(tree.proofs)
        for k in range(len(proof))
        for byte, bit in ((0, 3), (31, 7))
    ]

    # Execute
    accepted = [(i, c) for i, c in cases if tree.verify(tree.hashes[i], i, size, c, tree.root)]

    # Assert
    assert accepted == []


@pytest.mark.parametrize("size", SIZES)
def test_proof_fails_for_wrong_root(size: int) -> None:
    # Prepare
    tree = _Tree(size)
    wrong_roots = [_sha256(b""), _flip_bit(tree.root, 0, 0), _Tree(size + 1).root, b"", tree.root[:-1]]

    # Execute
    accepted = [
        (i, r)
        for i in range(size)
        for r in wrong_roots
        if tree.verify(tree.hashes[i], i, size, tree.proofs[i], r)
    ]

    # Assert
    assert accepted == []


@pytest.mark.parametrize("size", SIZES)
def test_proof_fails_for_claimed_size_with_different_path_length(size: int) -> None:
    # Prepare: a size whose audit path for the index has another length cannot consume the proof exactly.
    # (Sizes with the same path shape may verify; the signed block header binds root and size.)
    tree = _Tree(size)
    cases = [
        (i, m)
        for i in range(size)
        for m in range(i + 1, 2 * size + 2)
        if len(_reference_path(i, [b""] * m)) != len(tree.proofs[i])
    ]

    # Execute
    accepted = [(i, m) for i, m in cases if tree.verify(tree.hashes[i], i, m, tree.proofs[i], tree.root)]

    # Assert
    assert accepted == []


def test_ct_path_fails_for_claimed_size_with_shorter_path() -> None:
    # Prepare: PATH(5, D[8]) has three elements; PATH(5, D[6]) has two.
    vector = VECTORS["inclusion_proofs"][2]
    path = [bytes.fromhex(h) for h in vector["path"]]
    root8 = bytes.fromhex(VECTORS["roots"][8])

    # Execute
    as_size_6 = verify_inclusion(HASH, LEAF_HASHES[5], 5, 6, path, root8)
    as_size_8 = verify_inclusion(HASH, LEAF_HASHES[5], 5, 8, path, root8)

    # Assert
    assert (as_size_6, as_size_8) == (False, True)


@pytest.mark.parametrize(
    ("index", "tree_size"),
    [(0, 0), (1, 0), (-1, 1), (1, 1), (8, 8), (9, 8), (-1, 8)],
)
def test_verify_inclusion_rejects_index_outside_tree(index: int, tree_size: int) -> None:
    # Prepare
    root = bytes.fromhex(VECTORS["roots"][8])

    # Execute
    ok = verify_inclusion(HASH, LEAF_HASHES[0], index, tree_size, [], root)

    # Assert
    assert ok is False


# --- inclusion_proof argument checks and tree-shape properties -------------------------------------


@pytest.mark.parametrize(("size", "index"), [(0, 0), (1, 1), (1, -1), (8, 8), (8, 100), (8, -1), (40, 40)])
def test_inclusion_proof_raises_index_error_out_of_range(size: int, index: int) -> None:
    # Prepare
    hashes = [leaf_hash(_sha256, leaf) for leaf in _synthetic_leaves(size)]

    # Execute
    with pytest.raises(IndexError) as exc_info:
        inclusion_proof(_sha256, hashes, index)

    # Assert
    assert f"leaf index {index} outside a tree of {size} leaves" in str(exc_info.value)


def test_single_leaf_tree_root_is_the_leaf_hash_with_empty_proof() -> None:
    # Prepare
    hashes = [leaf_hash(_sha256, b"only")]

    # Execute
    root, proof = merkle_root(_sha256, hashes), inclusion_proof(_sha256, hashes, 0)

    # Assert
    assert root == hashes[0]
    assert proof == []
    assert verify_inclusion(_sha256, hashes[0], 0, 1, proof, root) is True


def test_odd_leaf_is_promoted_not_duplicated() -> None:
    # Prepare: duplicating the last leaf (Bitcoin style, CVE-2012-2459) must give a different root.
    three = LEAF_HASHES[:3]
    four_with_duplicate = [*three, three[-1]]

    # Execute
    root3, root4 = merkle_root(HASH, three), merkle_root(HASH, four_with_duplicate)

    # Assert
    assert root3.hex() == VECTORS["roots"][3]
    assert root3 != root4


def test_leaf_and_interior_hashes_are_domain_separated() -> None:
    # Prepare: a leaf whose data is the concatenation of two child hashes.
    left, right = LEAF_HASHES[0], LEAF_HASHES[1]

    # Execute
    as_leaf = merkle_root(HASH, [leaf_hash(HASH, left + right)])
    as_node = merkle_root(HASH, [left, right])

    # Assert
    assert as_node.hex() == VECTORS["roots"][2]
    assert as_leaf != as_node


def test_merkle_uses_the_given_hash_function() -> None:
    # Prepare
    calls: list[bytes] = []

    def recording_hash(data: bytes) -> bytes:
        calls.append(data)
        return _sha256(data)

    # Execute
    root = merkle_root(recording_hash, LEAF_HASHES[:2])

    # Assert
    assert calls == [b"\x01" + LEAF_HASHES[0] + LEAF_HASHES[1]]
    assert root.hex() == VECTORS["roots"][2]
