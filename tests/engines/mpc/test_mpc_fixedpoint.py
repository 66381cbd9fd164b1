from __future__ import annotations

import numpy as np
import pytest

from confide.engines.mpc import fixedpoint as fp
from confide.engines.mpc.errors import MpcError
from confide.engines.mpc.shares import prg, reconstruct, share, share_seeded


def test_encode_known_answers() -> None:
    enc = fp.encode([1.0, -1.0, 0.5, 2**-16, -(2**-17) * 3, 0.0])
    assert enc.tolist() == [65536, 2**64 - 65536, 32768, 1, 2**64 - 2, 0]
    assert fp.decode(enc).tolist() == [1.0, -1.0, 0.5, 2**-16, -(2**-15), 0.0]


def test_encode_error_bound_and_range() -> None:
    x = np.random.default_rng(0).uniform(-1e9, 1e9, 10000)
    assert np.max(np.abs(fp.decode(fp.encode(x)) - x)) <= 2**-17
    with pytest.raises(MpcError, match="out of range"):
        fp.encode([2.0**47])
    with pytest.raises(MpcError, match="NaN"):
        fp.encode([np.nan])


def test_truncation_known_answers_and_error() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-100, 100, 5000)
    y = rng.uniform(-100, 100, 5000)
    prod = fp.encode(x) * fp.encode(y)  # 32 fractional bits, |x*y| < 2^14 -> l_x = 46
    s0, s1 = share(prod, 2, rng.bytes)
    t = reconstruct([fp.truncate_share_2pc(s0, 0), fp.truncate_share_2pc(s1, 1)])
    exact = fp.to_signed(prod) >> 16
    diff = fp.to_signed(t) - exact
    assert set(np.unique(diff).tolist()) <= {-1, 0, 1}  # failure prob 2^-17 per element; seeded
    assert np.max(np.abs(fp.decode(t) - x * y)) < 2 * 2**-16 + 100 * 2**-16
    # fixed sharings of 3.0 (3 * 2^16): a share far from the wrap point truncates to 3 (+-1 LSB);
    # a share that wraps (x0 = 2^63 + 5) is the documented failure: off by 2^(64-16)
    v = np.array([3 * 2**16], dtype=np.uint64)
    for a0, want in ((2**40 + 5, 3), (2**62 + 12345, 3), (2**63 + 5, 3 - 2**48)):
        a = np.array([a0], dtype=np.uint64)
        got = fp.to_signed(fp.truncate_share_2pc(a, 0, 16) + fp.truncate_share_2pc(v - a, 1, 16))
        assert abs(int(got[0]) - want) <= 1


def test_truncation_rejects_third_party() -> None:
    with pytest.raises(MpcError, match="two parties"):
        fp.truncate_share_2pc(np.zeros(1, np.uint64), 2)


def test_prg_and_seeded_shares() -> None:
    seed = bytes(32)
    a = prg(seed, 4)
    assert a.tolist() == prg(seed, 4).tolist()
    assert a.tolist() != prg(seed, 4, stream=1).tolist()
    # AES-256-CTR with a zero key and zero counter block: first block is dc95c078a2408989ad48a21492842087
    assert a[:2].astype("<u8").tobytes().hex() == "dc95c078a2408989ad48a21492842087"
    x = fp.encode([1.5, -2.25])
    s, own = share_seeded(x, np.random.default_rng(2).bytes)
    assert fp.decode(reconstruct([own, prg(s, 2)])).tolist() == [1.5, -2.25]
    with pytest.raises(MpcError, match="seed"):
        prg(b"short", 1)
