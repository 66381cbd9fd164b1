"""Shamir secret sharing of 32-byte secrets (seeds, X25519 private keys) over GF(p), p = 2^256 + 297.

``p`` is the smallest prime above 2^256, so every 32-byte string (read big-endian) is a field
element and nothing has to be split into pieces. A secret ``s`` is shared with threshold ``t`` as
the values ``f(x_i)`` of a random polynomial ``f(X) = s + a_1 X + ... + a_{t-1} X^{t-1}`` at distinct
non-zero points ``x_i`` (1..65535; secure aggregation uses the client ids). Any ``t`` shares give
``s`` by Lagrange interpolation at 0; any ``t - 1`` shares are uniformly distributed whatever ``s``
is (perfect hiding). Coefficients are drawn as 48 random bytes reduced mod ``p`` (statistical
distance from uniform below 2^-127).

``combine`` refuses fewer than ``t`` shares (:class:`NotEnoughShares`) and, when given ``k > t``,
interpolates from the ``t`` lowest-x shares and checks that every other share lies on that
polynomial (:class:`InconsistentShares` otherwise). So up to ``k - t`` wrong shares are always
detected (detection, not error correction: the right secret is not recovered then).
``interpolate_at_zero`` is the raw Lagrange step without those
checks; with ``t - 1`` shares it returns an unrelated field element, not the secret.

Wire form of a share (37 bytes): ``x`` (2 bytes BE), ``t`` (2 bytes BE), ``y`` (33 bytes BE).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

from .errors import InconsistentShares, NotEnoughShares, ShamirError

PRIME = 2**256 + 297
SECRET_BYTES = 32
ELEMENT_BYTES = 33
SHARE_BYTES = 4 + ELEMENT_BYTES
MAX_X = 0xFFFF
RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class Share:
    """The point ``(x, y = f(x))`` of a degree ``threshold - 1`` polynomial."""

    x: int
    y: int
    threshold: int

    def __post_init__(self) -> None:
        if not 1 <= self.x <= MAX_X:
            raise ShamirError(f"share x must be in 1..{MAX_X}, got {self.x}")
        if not 0 <= self.y < PRIME:
            raise ShamirError("share y is not a field element")
        if not 1 <= self.threshold <= MAX_X:
            raise ShamirError(f"share threshold must be in 1..{MAX_X}, got {self.threshold}")

    def to_bytes(self) -> bytes:
        return (
            self.x.to_bytes(2, "big")
            + self.threshold.to_bytes(2, "big")
            + self.y.to_bytes(ELEMENT_BYTES, "big")
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        if len(data) != SHARE_BYTES:
            raise ShamirError(f"a share is {SHARE_BYTES} bytes, got {len(data)}")
        return cls(
            x=int.from_bytes(data[0:2], "big"),
            threshold=int.from_bytes(data[2:4], "big"),
            y=int.from_bytes(data[4:], "big"),
        )


def _check_params(n: int, t: int) -> None:
    if not 2 <= t <= n:
        raise ShamirError(
            f"need 2 <= threshold <= n (threshold 1 would put the secret in every share), got t={t}, n={n}"
        )
    if n > MAX_X:
        raise ShamirError(f"at most {MAX_X} shares, got {n}")


def _points(n: int, xs: Sequence[int] | None) -> list[int]:
    points = list(range(1, n + 1)) if xs is None else [int(x) for x in xs]
    if len(points) != n:
        raise ShamirError(f"{len(points)} share points for n={n}")
    if len(set(points)) != n or not all(1 <= x <= MAX_X for x in points):
        raise ShamirError(f"share points must be distinct and in 1..{MAX_X}")
    return points


def _secret_int(secret: bytes) -> int:
    if len(secret) != SECRET_BYTES:
        raise ShamirError(f"the secret must be {SECRET_BYTES} bytes, got {len(secret)}")
    return int.from_bytes(secret, "big")


def split_with_coefficients(secret: bytes, coefficients: Sequence[int], xs: Sequence[int]) -> list[Share]:
    """Shares of ``f(X) = secret + c_1 X + ... + c_{t-1} X^{t-1}`` at ``xs`` (known-answer tests;
    ``split`` draws the coefficients)."""
    t = len(coefficients) + 1
    points = _points(len(xs), xs)
    _check_params(len(points), t)
    if not all(0 <= c < PRIME for c in coefficients):
        raise ShamirError("coefficients must be field elements")
    poly = [_secret_int(secret), *coefficients]
    out = []
    for x in points:
        acc = 0
        for c in reversed(poly):  # Horner
            acc = (acc * x + c) % PRIME
        out.append(Share(x, acc, t))
    return out


def split(
    secret: bytes, n: int, t: int, rng: RandomBytes = os.urandom, *, xs: Sequence[int] | None = None
) -> list[Share]:
    """Share a 32-byte ``secret`` among ``n`` points (``xs``, default 1..n) with threshold ``t``."""
    _check_params(n, t)
    points = _points(n, xs)
    coefficients = [int.from_bytes(rng(48), "big") % PRIME for _ in range(t - 1)]
    return split_with_coefficients(secret, coefficients, points)


@lru_cache(maxsize=8192)
def _lagrange_weights(xs: tuple[int, ...], point: int) -> tuple[int, ...]:
    """``w_i = prod_{j != i} (point - x_j) / (x_i - x_j)`` mod p, so ``f(point) = sum w_i f(x_i)``
    (cached: a server reconstructs many secrets from the same set of clients)."""
    out = []
    for i, xi in enumerate(xs):
        num = 1
        den = 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * (point - xj) % PRIME
                den = den * (xi - xj) % PRIME
        out.append(num * pow(den, -1, PRIME) % PRIME)
    return tuple(out)


def _interpolate(shares: Sequence[Share], point: int) -> int:
    xs = tuple(s.x for s in shares)
    if len(set(xs)) != len(xs):
        raise ShamirError("two shares with the same x")
    weights = _lagrange_weights(xs, point)
    return sum(w * s.y for w, s in zip(weights, shares, strict=True)) % PRIME


def interpolate_at_zero(shares: Sequence[Share]) -> int:
    """Raw Lagrange interpolation of the given points at 0 (no threshold or consistency check)."""
    if not shares:
        raise NotEnoughShares("no shares to interpolate")
    return _interpolate(shares, 0)


def combine(shares: Sequence[Share]) -> bytes:
    """The 32-byte secret from at least ``threshold`` shares (see the module docstring)."""
    if not shares:
        raise NotEnoughShares("no shares")
    t = shares[0].threshold
    if any(s.threshold != t for s in shares):
        raise InconsistentShares("shares name different thresholds")
    ordered = sorted(shares, key=lambda s: s.x)
    if any(a.x == b.x for a, b in pairwise(ordered)):
        raise ShamirError("two shares with the same x")
    if len(ordered) < t:
        raise NotEnoughShares(f"{len(ordered)} shares, threshold is {t}: the secret cannot be recovered")
    base = ordered[:t]
    value = _interpolate(base, 0)
    for extra in ordered[t:]:
        if _interpolate(base, extra.x) != extra.y:
            raise InconsistentShares(
                f"the {len(ordered)} shares do not lie on one polynomial of degree {t - 1} (at x={extra.x})"
            )
    if value >= 2 ** (8 * SECRET_BYTES):
        raise InconsistentShares("the reconstructed value is not a 32-byte secret")
    return value.to_bytes(SECRET_BYTES, "big")
