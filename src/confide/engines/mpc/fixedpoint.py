"""Two's-complement fixed point over the ring Z_2^64 (numpy ``uint64``, arithmetic wraps mod 2^64).

A real ``x`` is encoded as ``round(x * 2^F) mod 2^64`` (``F`` fractional bits, default 16) and
decoded by reading the word as a signed ``int64`` and dividing by ``2^F``.

Range and error (F = 16):

* Representable: ``|x| < 2^(63-F)`` = 1.4e14. ``encode`` refuses NaN/inf and values out of range.
* Encoding error: ``|decode(encode(x)) - x| <= 2^-(F+1)`` (about 7.6e-6) for in-range ``x``.
* A product of two encodings carries ``2F`` fractional bits; it is exact in the ring as long as
  ``|x*y| < 2^(63-2F)`` = 2.1e9 (sums of products likewise: keep ``|sum| < 2^(63-2F)``).
  It is brought back to ``F`` bits by a truncation (below).

Truncation (dividing a shared value by ``2^d``):

* ``truncate_share_2pc`` — SecureML (Mohassel-Zhang 2017) local truncation, **two parties only**:
  party 0 takes ``x0 >> d`` (arithmetic shift), party 1 takes ``-((-x1) >> d)``. No
  communication. If ``|x| < 2^l_x`` the reconstructed result is ``floor(x / 2^d)`` or one more
  (error within +-1 LSB, i.e. +-2^-F after decoding) except with probability at most
  ``2^(l_x + 1 - 64)`` over the random sharing, when it is off by about ``2^(64-d)`` (a wrong
  value, not a small error). Example: a product of two values below 2^7 at F=16 has
  ``l_x = 46``, failure probability <= 2^-17 per element. With three or more parties the sum of
  the local shifts is not close to ``x / 2^d``: do not use it there.
* ``truncate_with_pair`` — for any number of parties, with a dealer-made pair ``(r, r >> d)``
  (see ``beaver.Dealer``): parties open ``c = x + 2^l_x + r`` where ``r`` is uniform in
  ``[0, 2^62)``; the result ``(c >> d) - (r >> d) - 2^(l_x - d)`` is ``floor(x / 2^d)`` or one
  more; it never fails for ``|x| < 2^l_x``, ``l_x <= 61``. The price is statistical rather than
  perfect hiding: ``c`` reveals ``x`` with statistical distance at most ``2^(l_x - 61)``
  (2^-15 for l_x = 46). One round.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .errors import MpcError

U64 = np.uint64
Ring = npt.NDArray[np.uint64]
FRAC_BITS = 16


def encode(x: npt.ArrayLike, frac_bits: int = FRAC_BITS) -> Ring:
    """Reals -> ring elements (round half to even at ``2^-frac_bits``)."""
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise MpcError("fixed point: cannot encode NaN or infinity")
    scaled = np.rint(a * float(2**frac_bits))
    limit = float(2**63)
    if scaled.size and (np.max(scaled) >= limit or np.min(scaled) < -limit):
        raise MpcError(f"fixed point: value out of range (|x| must be < 2^{63 - frac_bits})")
    return scaled.astype(np.int64).view(np.uint64)


def encode_int(x: npt.ArrayLike) -> Ring:
    """Integers (Python ints or int arrays, possibly negative) -> ring elements, exact."""
    a = np.asarray(x)
    if a.dtype == np.uint64:
        return a.copy()
    return a.astype(np.int64).view(np.uint64)


def to_signed(x: Ring) -> npt.NDArray[np.int64]:
    """Ring elements read as two's-complement int64."""
    return np.asarray(x, dtype=np.uint64).view(np.int64)


def decode(x: Ring, frac_bits: int = FRAC_BITS) -> npt.NDArray[np.float64]:
    """Ring elements -> reals. Values beyond 2^53 LSB lose float64 precision (relative 1e-16)."""
    return to_signed(x).astype(np.float64) / float(2**frac_bits)


def truncate_share_2pc(share: Ring, party: int, bits: int = FRAC_BITS) -> Ring:
    """SecureML local truncation of one party's share (two parties only; see module docstring)."""
    s = np.asarray(share, dtype=np.uint64)
    if party == 0:
        return (s.view(np.int64) >> bits).view(np.uint64)
    if party == 1:
        neg = (np.uint64(0) - s).view(np.int64)
        return np.uint64(0) - (neg >> bits).view(np.uint64)
    raise MpcError("SecureML local truncation is defined for two parties (0 and 1) only")


def public_shift(c: Ring, bits: int) -> Ring:
    """Logical right shift of a public, non-negative (< 2^63) ring value."""
    return np.asarray(c, dtype=np.uint64) >> np.uint64(bits)
