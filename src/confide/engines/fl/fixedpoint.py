"""Fixed-point encoding of model updates into the ring Z_2^64, with clipping, so that sums are exact.

A client's update ``x`` (float64 array) is clipped coordinate-wise to ``[-clip, clip]`` and encoded
as ``round(x * 2^F) mod 2^64`` (round half to even, ``F = frac_bits``). Words are numpy ``uint64``;
arithmetic wraps mod 2^64, which is what secure aggregation needs (masks are uniform ring elements).

Why the sum is exact: every encoded coordinate satisfies ``|v| <= clip * 2^F``; a sum of ``k``
encodings, read back as a two's-complement ``int64``, equals the integer sum as long as
``k * clip * 2^F < 2^63``, i.e. ``k <= max_summands``. With the defaults (``F = 24``, ``clip =
2^16``) that is ``k < 2^23`` (8.4 million clients); the resolution is ``2^-24`` (6e-8) and the
encoding error at most ``2^-25`` per coordinate and client. ``check_summands(k)`` refuses a ``k``
beyond the bound, so wrap-around can never silently corrupt an aggregate.

Decoding converts the exact integer sum to float64: exact while ``|sum| < 2^53`` LSB (here
``|sum| < 2^29``), otherwise rounded to float64 precision (relative 1.1e-16). Clipping is the
caller's contract with the data (a bound on each update's coordinates, as in DP-FedAvg clipping);
``encode`` reports how many coordinates it clipped via ``clipped_count``.

Why not Z_2^32: it would halve the bytes sent and the PRG work, but at ``F = 16`` it leaves
``k * clip < 2^15`` — e.g. clip 32 for 1000 clients — too tight as a general default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import FixedPointError

Ring = npt.NDArray[np.uint64]
RING_BITS = 64
FRAC_BITS = 24
CLIP = float(2**16)


@dataclass(frozen=True, slots=True)
class FixedPoint:
    """Encoding parameters both the clients and the aggregator must agree on."""

    frac_bits: int = FRAC_BITS
    clip: float = CLIP

    def __post_init__(self) -> None:
        if not 0 <= self.frac_bits <= 52:
            raise FixedPointError(f"frac_bits must be in 0..52, got {self.frac_bits}")
        if not (np.isfinite(self.clip) and self.clip > 0):
            raise FixedPointError(f"clip must be a positive finite number, got {self.clip}")
        if self.clip * 2.0**self.frac_bits >= 2.0**53:
            raise FixedPointError("clip * 2^frac_bits must stay below 2^53 (float64 integer range)")

    @property
    def scale(self) -> float:
        return float(2**self.frac_bits)

    @property
    def max_word(self) -> int:
        """Largest magnitude of one encoded coordinate: ``round(clip * 2^F)``."""
        return round(self.clip * self.scale)

    @property
    def max_summands(self) -> int:
        """Largest number of encodings whose sum is still exact (``k * max_word < 2^63``)."""
        return (2**63 - 1) // self.max_word

    def check_summands(self, k: int) -> None:
        if not 0 <= k <= self.max_summands:
            raise FixedPointError(
                f"a sum of {k} updates may wrap the 64-bit ring (at most {self.max_summands} with "
                f"clip {self.clip} and {self.frac_bits} fractional bits)"
            )

    def clipped_count(self, x: npt.ArrayLike) -> int:
        """How many coordinates of ``x`` ``encode`` would clip."""
        a = np.asarray(x, dtype=np.float64)
        return int(np.count_nonzero(np.abs(a) > self.clip))

    def encode(self, x: npt.ArrayLike) -> Ring:
        """Clip to ``[-clip, clip]``, scale by ``2^F``, round half to even, wrap into Z_2^64."""
        a = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise FixedPointError("cannot encode NaN or infinity")
        scaled = np.clip(a, -self.clip, self.clip)
        scaled *= self.scale
        np.rint(scaled, out=scaled)
        return scaled.astype(np.int64).view(np.uint64)

    def decode(self, s: Ring) -> npt.NDArray[np.float64]:
        """Ring words (one encoding or an exact sum of encodings) -> float64."""
        words = np.asarray(s, dtype=np.uint64)
        return words.view(np.int64).astype(np.float64) / self.scale

    def decode_mean(self, s: Ring, k: int) -> npt.NDArray[np.float64]:
        """The sum of ``k`` encodings decoded and divided by ``k`` (FedAvg with equal weights)."""
        if k <= 0:
            raise FixedPointError("mean of zero updates")
        return self.decode(s) / float(k)
