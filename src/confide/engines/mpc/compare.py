"""Secure comparison with a public threshold: additive shares of ``[x >= k]`` (1 or 0) from additive
shares of ``x``, for two compute parties and dealer material (``beaver.Spec.compare``).

Protocol (``n`` comparisons at once, 64 rounds; the parties learn nothing but uniformly masked values):

1. ``d = x - k`` (party 0 subtracts ``k``); open ``m = d + r`` with the dealer's ``r``, uniform in
   Z_2^64 and also held bit by bit in XOR shares. ``m`` is uniform: it says nothing about ``d``.
2. The sign bit of ``d = m - r (mod 2^64)`` comes out of a ripple-borrow subtraction of the shared
   bits of ``r`` from the public ``m``: ``borrow_{i+1} = (r_i AND borrow_i) XOR ((NOT m_i) AND
   (r_i XOR borrow_i))`` (``r_i OR borrow_i`` where ``m_i = 0``, ``r_i AND borrow_i`` where ``m_i =
   1``). Only ``r_i AND borrow_i`` needs both parties: one dealer AND triple and one
   round per bit (62 rounds; ``borrow_1 = (NOT m_0) AND r_0`` is local). Then
   ``MSB(d) = m_63 XOR r_63 XOR borrow_63``, and ``[x >= k] = NOT MSB(d)``, in XOR shares.
3. The bit becomes an additive share with a daBit ``s`` (shared both ways): open ``c = b XOR s``,
   then ``b = c + (1 - 2c) s``.

Exact (no statistical slack) whenever ``|x - k| < 2^63``: counts always are. Trust model as for every
dealer material (``beaver``): a dealer that colludes with a party breaks privacy, a wrong dealer
breaks correctness. Known-answer checks: ``tests/engines/mpc/test_mpc_compare.py``.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from .beaver import CompareMaterial
from .errors import MpcError
from .fixedpoint import Ring
from .party import PartyContext
from .program import Inbound, Round

__all__ = ["geq_public"]

_ONE = np.uint64(1)


def _bit(words: Ring, i: int) -> Ring:
    return (words >> np.uint64(i)) & _ONE


def geq_public(ctx: PartyContext, x: Ring, k: int, mat: CompareMaterial) -> Generator[Round, Inbound, Ring]:
    """This party's additive shares of ``[x >= k]`` for its shares ``x`` (shape (n,)) and public ``k``."""
    if len(ctx.parties) != 2:
        raise MpcError("secure comparison runs between two compute parties")
    if x.shape != mat.r.shape:
        raise MpcError(f"comparison material for {mat.r.shape} values, not {x.shape}")
    first = ctx.party == ctx.parties[0]
    d = x - np.uint64(k % 2**64) if first else x
    (m,) = yield from ctx.open([d + mat.r])
    r = mat.r_bits
    borrow = (_bit(m, 0) ^ _ONE) & _bit(r, 0)
    for i in range(1, 63):
        ri, a, b, c = _bit(r, i), _bit(mat.and_a, i), _bit(mat.and_b, i), _bit(mat.and_c, i)
        e, f = yield from ctx.open_xor([ri ^ a, borrow ^ b])
        t = c ^ (e & b) ^ (f & a)
        if first:
            t ^= e & f
        borrow = t ^ ((_bit(m, i) ^ _ONE) & (ri ^ borrow))
    geq = _bit(r, 63) ^ borrow  # XOR shares of MSB(d) ...
    if first:
        geq ^= _bit(m, 63) ^ _ONE  # ... and party 0 adds the public bit and the NOT
    (c,) = yield from ctx.open_xor([geq ^ mat.s_bit])
    out: Ring = (_ONE - (c << _ONE)) * mat.s_arith
    return out + c if first else out
