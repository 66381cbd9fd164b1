from __future__ import annotations

import itertools

import numpy as np
import pytest

from confide.engines.fl import shamir
from confide.engines.fl.errors import InconsistentShares, NotEnoughShares, ShamirError
from confide.engines.fl.shamir import PRIME, Share


def _secret(k: int) -> bytes:
    return k.to_bytes(32, "big")


def test_prime_is_the_smallest_above_2_256() -> None:
    assert PRIME == 2**256 + 297
    for a in (2, 3, 5, 7, 11, 13):  # Fermat witnesses (the primality itself is checked by openssl prime)
        assert pow(a, PRIME - 1, PRIME) == 1


def test_known_answer_small_polynomial() -> None:
    # f(X) = 5 + 2X + 3X^2
    shares = shamir.split_with_coefficients(_secret(5), [2, 3], [1, 2, 3, 4, 5])
    assert [(s.x, s.y, s.threshold) for s in shares] == [
        (1, 10, 3),
        (2, 21, 3),
        (3, 38, 3),
        (4, 61, 3),
        (5, 90, 3),
    ]
    assert shares[0].to_bytes().hex() == "0001" + "0003" + "00" * 32 + "0a"
    assert shamir.combine(shares[2:]) == _secret(5)
    # two points lie on the line 11X - 1: at 0 that is p - 1, not the secret
    assert shamir.interpolate_at_zero(shares[:2]) == PRIME - 1
    with pytest.raises(NotEnoughShares, match="2 shares, threshold is 3"):
        shamir.combine(shares[:2])


def test_known_answer_with_reduction_mod_p() -> None:
    # f(X) = (2^256 - 1) + 2^256 X: f(1) = 2^257 - 1 - p = 2^256 - 298, f(2) = 3 * 2^256 - 1 - 2p
    shares = shamir.split_with_coefficients(b"\xff" * 32, [2**256], [1, 2])
    assert [s.y for s in shares] == [2**256 - 298, 3 * 2**256 - 1 - 2 * PRIME]
    assert shamir.combine(shares) == b"\xff" * 32


def test_any_t_subset_recovers_the_secret() -> None:
    rng = np.random.default_rng(0)
    secret = rng.bytes(32)
    shares = shamir.split(secret, 6, 4, rng.bytes, xs=[3, 9, 17, 200, 1000, 65535])
    for subset in itertools.combinations(shares, 4):
        assert shamir.combine(list(subset)) == secret
    assert shamir.combine(shares) == secret  # all six, consistency-checked
    for subset in itertools.combinations(shares, 3):
        assert shamir.interpolate_at_zero(list(subset)) != int.from_bytes(secret, "big")
        with pytest.raises(NotEnoughShares):
            shamir.combine(list(subset))


def test_wrong_share_is_detected_when_more_than_t() -> None:
    rng = np.random.default_rng(1)
    secret = rng.bytes(32)
    shares = shamir.split(secret, 5, 3, rng.bytes)
    for i in range(5):
        bad = list(shares)
        bad[i] = Share(bad[i].x, (bad[i].y + 1) % PRIME, 3)
        with pytest.raises(InconsistentShares):
            shamir.combine(bad)
    with pytest.raises(InconsistentShares, match="different thresholds"):
        shamir.combine([*shares[:2], Share(shares[2].x, shares[2].y, 2)])
    # with exactly t shares a wrong one cannot be noticed: the result is simply not the secret
    wrong = [*shares[:2], Share(shares[2].x, (shares[2].y + 1) % PRIME, 3)]
    assert shamir.interpolate_at_zero(wrong) != int.from_bytes(secret, "big")


def test_share_wire_form_round_trips_and_is_strict() -> None:
    s = Share(65535, PRIME - 1, 40)
    assert Share.from_bytes(s.to_bytes()) == s
    with pytest.raises(ShamirError, match="37 bytes"):
        Share.from_bytes(s.to_bytes()[:-1])
    with pytest.raises(ShamirError, match="field element"):
        Share.from_bytes(b"\x00\x01\x00\x02" + PRIME.to_bytes(33, "big"))
    with pytest.raises(ShamirError, match="x must be"):
        Share.from_bytes(b"\x00\x00\x00\x02" + bytes(33))


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ShamirError, match="threshold"):
        shamir.split(bytes(32), 3, 1)
    with pytest.raises(ShamirError, match="threshold"):
        shamir.split(bytes(32), 3, 4)
    with pytest.raises(ShamirError, match="32 bytes"):
        shamir.split(bytes(31), 3, 2)
    with pytest.raises(ShamirError, match="distinct"):
        shamir.split(bytes(32), 3, 2, xs=[1, 1, 2])
    with pytest.raises(ShamirError, match="distinct"):
        shamir.split(bytes(32), 2, 2, xs=[0, 1])
    with pytest.raises(ShamirError, match="same x"):
        shamir.combine([Share(1, 1, 2), Share(1, 1, 2)])
    with pytest.raises(NotEnoughShares):
        shamir.combine([])
