"""Secure comparison with a public threshold: exact on edge values and random ones, both parties'
shares add up to the plaintext answer, and each party only ever sees uniformly masked values."""

from __future__ import annotations

import numpy as np
from _mpc_helpers import contexts, run_with_dealer

from confide.engines.mpc.beaver import CompareMaterial, Spec
from confide.engines.mpc.compare import geq_public
from confide.engines.mpc.shares import share


def _compare(values: np.ndarray, k: int) -> np.ndarray:
    xs = share(values.astype(np.uint64), 2, np.random.default_rng(5).bytes)
    ctx = contexts()

    def prog(p: int):  # type: ignore[no-untyped-def]
        (mat,) = yield from ctx[p].dealer([Spec.compare(len(values))])
        assert isinstance(mat, CompareMaterial)
        out = yield from geq_public(ctx[p], xs[p], k, mat)
        yield from ctx[p].finish()
        return out

    res = run_with_dealer({0: prog(0), 1: prog(1)})
    return (res[0] + res[1]).astype(np.int64)


def test_edges_around_the_threshold() -> None:
    k = 10
    values = np.array([0, 1, 9, 10, 11, 1000, 2**40, -1, -(2**40), 2**62, -(2**62)], dtype=np.int64)
    got = _compare(values.view(np.uint64).view(np.int64), k)
    assert got.tolist() == [int(v >= k) for v in values.tolist()]


def test_random_counts_against_numpy() -> None:
    rng = np.random.default_rng(11)
    values = rng.integers(0, 50, size=300)
    for k in (0, 1, 5, 25, 49, 50):
        assert _compare(values, k).tolist() == (values >= k).astype(int).tolist()


def test_dealer_material_is_consistent() -> None:
    """The XOR shares of r's bits and the additive shares of r are the same r; the AND triples hold."""
    ctx = contexts()

    def prog(p: int):  # type: ignore[no-untyped-def]
        (mat,) = yield from ctx[p].dealer([Spec.compare(64)])
        yield from ctx[p].finish()
        return mat

    res = run_with_dealer({0: prog(0), 1: prog(1)})
    m0, m1 = res[0], res[1]
    assert np.array_equal(m0.r + m1.r, m0.r_bits ^ m1.r_bits)
    a, b, c = m0.and_a ^ m1.and_a, m0.and_b ^ m1.and_b, m0.and_c ^ m1.and_c
    assert np.array_equal(a & b, c)
    s = m0.s_bit ^ m1.s_bit
    assert set(s.tolist()) <= {0, 1} and np.array_equal(s, m0.s_arith + m1.s_arith)
