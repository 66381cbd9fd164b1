from __future__ import annotations

import numpy as np
import pytest

from confide.engines.fl.errors import FixedPointError
from confide.engines.fl.fixedpoint import FixedPoint


def test_encode_known_answers() -> None:
    fp = FixedPoint()  # 24 fractional bits, clip 2^16
    enc = fp.encode([1.0, -1.0, 0.5, 2**-24, -3 * 2**-25, 0.0, -0.0])
    assert enc.dtype == np.uint64
    assert enc.tolist() == [2**24, 2**64 - 2**24, 2**23, 1, 2**64 - 2, 0, 0]  # -1.5 LSB rounds to even
    assert fp.decode(enc).tolist() == [1.0, -1.0, 0.5, 2**-24, -(2**-23), 0.0, 0.0]


def test_round_trip_including_negatives() -> None:
    fp = FixedPoint()
    x = np.random.default_rng(0).uniform(-1000, 1000, 20_000)
    assert np.min(x) < 0
    assert np.max(np.abs(fp.decode(fp.encode(x)) - x)) <= 2**-25
    small = FixedPoint(frac_bits=8, clip=10.0)
    y = np.array([-9.99, -0.004, 0.0039, 3.14159])
    assert np.max(np.abs(small.decode(small.encode(y)) - y)) <= 2**-9


def test_clipping() -> None:
    fp = FixedPoint(frac_bits=24, clip=4.0)
    x = np.array([5.0, -1e300, 4.0, -4.0, 3.5])
    assert fp.clipped_count(x) == 2
    assert fp.decode(fp.encode(x)).tolist() == [4.0, -4.0, 4.0, -4.0, 3.5]
    assert fp.encode([1e9]).tolist() == [4 * 2**24]
    assert x[0] == 5.0  # the input is not modified
    with pytest.raises(FixedPointError, match="NaN"):
        fp.encode([np.nan])
    with pytest.raises(FixedPointError, match="infinity"):
        fp.encode([np.inf])


def test_sums_are_exact_up_to_max_summands() -> None:
    fp = FixedPoint(frac_bits=52, clip=1.0)  # one word up to 2^52: at most 2047 in a sum
    assert fp.max_summands == 2047
    total = fp.encode(np.full(2047, -1.0)).sum(dtype=np.uint64)  # wraps mod 2^64 as in the protocol
    assert fp.decode(np.array([total], dtype=np.uint64)).tolist() == [-2047.0]
    fp.check_summands(2047)
    with pytest.raises(FixedPointError, match="wrap"):
        fp.check_summands(2048)  # 2048 * 2^52 = 2^63 would read back as negative
    default = FixedPoint()
    assert default.max_summands == 2**23 - 1
    rng = np.random.default_rng(1)
    updates = rng.normal(0, 100, (50, 1000))
    ring_sum = np.zeros(1000, dtype=np.uint64)
    for u in updates:
        ring_sum += default.encode(u)
    exact = np.rint(updates * 2.0**24).astype(np.int64).sum(axis=0)
    assert np.array_equal(ring_sum.view(np.int64), exact)
    assert np.max(np.abs(default.decode_mean(ring_sum, 50) - updates.mean(axis=0))) <= 2**-25


def test_bad_parameters() -> None:
    with pytest.raises(FixedPointError):
        FixedPoint(frac_bits=53)
    with pytest.raises(FixedPointError):
        FixedPoint(clip=0.0)
    with pytest.raises(FixedPointError, match="2\\^53"):
        FixedPoint(frac_bits=40, clip=2.0**13)
    with pytest.raises(FixedPointError):
        FixedPoint().decode_mean(np.zeros(1, dtype=np.uint64), 0)
