"""RFC 9380 hashing to curve25519: suite ``curve25519_XMD:SHA-512_ELL2_NU_``, field arithmetic in GMP.

``expand_message_xmd`` (SHA-512, §5.3.1, with the §5.3.3 rule for a DST longer than 255 bytes),
``hash_to_field`` (§5.2, m = 1, L = 48) and the Elligator 2 ``map_to_curve`` of §6.7.1 for
curve25519 (J = 486662, K = 1, Z = 2). ``encode_to_curve`` (the NU suite) is
``Q = map_to_curve(hash_to_field(msg, 1)[0])`` followed by ``clear_cofactor(Q) = 8·Q``.

What the PSI engine uses is only the Montgomery u-coordinate of ``Q`` (``Q.x`` of the RFC vectors),
as 32 little-endian bytes, i.e. *before* the cofactor is cleared. The cofactor is cleared by the
first scalar multiplication instead: X25519 clamps its scalar (RFC 7748: low three bits cleared), so
every scalar it uses is a multiple of 8 and ``X25519(k, u(Q)) = u(clamp(k)·Q) = u((clamp(k)/8)·(8·Q))``
— a point of the prime-order subgroup, the same one ``encode_to_curve`` followed by a scalar
multiplication would give. Only the eight low-order points map to the all-zero output, which the
hash reaches with negligible probability (X25519 then raises ``ValueError``).

Speed: field elements on the batch path are ``gmpy2.mpz``; the square test of step 6 is GMP's
Jacobi symbol (~1.4 us, about 15x faster than a binary-Euclid Jacobi on CPython ints), and
``encode_batch`` inverts the whole batch with one modular inversion (Montgomery's trick). No square
root is taken on that path: the u-coordinate does not depend on the sign of y. ``map_to_curve``
(with y, for the known-answer tests) does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import gmpy2  # type: ignore[import-untyped]

__all__ = [
    "SUITE",
    "encode_batch",
    "encode_to_curve_u",
    "expand_message_xmd",
    "hash_to_field",
    "is_square",
    "map_to_curve",
]

SUITE = "curve25519_XMD:SHA-512_ELL2_NU_"
P = 2**255 - 19
J = 486662  # Montgomery A of curve25519; K = 1
Z = 2
L = 48  # ceil((ceil(log2(p)) + k) / 8) with k = 128
_SQRT_M1 = pow(2, (P - 1) // 4, P)
_MP, _MJ, _MP_J = gmpy2.mpz(P), gmpy2.mpz(J), gmpy2.mpz(P - J)
_OVERSIZE = b"H2C-OVERSIZE-DST-"


def _dst_prime(dst: bytes, hash_fn: Callable[..., Any]) -> bytes:
    if len(dst) > 255:
        dst = hash_fn(_OVERSIZE + dst).digest()
    return dst + bytes([len(dst)])


def expand_message_xmd(
    msg: bytes, dst: bytes, len_in_bytes: int, hash_fn: Callable[..., Any] = hashlib.sha512
) -> bytes:
    """RFC 9380 §5.3.1 with a Merkle–Damgård hash (SHA-512 by default: b_in_bytes 64, s_in_bytes 128)."""
    proto = hash_fn()
    b_len, s_len = proto.digest_size, proto.block_size
    ell = -(-len_in_bytes // b_len)
    if ell > 255 or len_in_bytes > 65535:
        raise ValueError("expand_message_xmd: len_in_bytes too large")
    dst_prime = _dst_prime(dst, hash_fn)
    b0 = hash_fn(bytes(s_len) + msg + len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime).digest()
    blocks = [hash_fn(b0 + b"\x01" + dst_prime).digest()]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b0, blocks[-1], strict=True))
        blocks.append(hash_fn(mixed + bytes([i]) + dst_prime).digest())
    return b"".join(blocks)[:len_in_bytes]


def hash_to_field(msg: bytes, dst: bytes, count: int) -> list[int]:
    """RFC 9380 §5.2 for GF(p), m = 1, L = 48, expand_message_xmd with SHA-512."""
    uniform = expand_message_xmd(msg, dst, count * L)
    return [int.from_bytes(uniform[i * L : (i + 1) * L], "big") % P for i in range(count)]


def is_square(a: int) -> bool:
    """``is_square`` of RFC 9380 §4 for GF(p): True for 0 and the quadratic residues (Jacobi symbol)."""
    return bool(gmpy2.jacobi(a % _MP, _MP) >= 0)


def _sqrt(a: int) -> int:
    """A square root of a square ``a`` (p = 5 mod 8, RFC 9380 Appendix I.2)."""
    r = pow(a, (P + 3) // 8, P)
    if r * r % P != a % P:
        r = r * _SQRT_M1 % P
    if r * r % P != a % P:
        raise ValueError("not a square")
    return r


def _x1(u: int, inv_d: int | None) -> int:
    """Steps 1–2 of §6.7.1: x1 = -J · inv0(1 + Z·u²), or -J when that is 0."""
    if inv_d is None:
        d = (1 + Z * u * u) % P
        inv_d = pow(d, -1, P) if d else 0
    x1 = -J * inv_d % P
    return x1 if x1 else P - J


def map_to_curve(u: int) -> tuple[int, int]:
    """Elligator 2 for curve25519 (§6.7.1, J = 486662, K = 1): the Montgomery point (x, y)."""
    x1 = _x1(u % P, None)
    gx1 = x1 * (x1 * (x1 + J) + 1) % P
    if is_square(gx1):
        x, y = x1, _sqrt(gx1)
        if y & 1 == 0:  # sgn0(y) == 1
            y = P - y if y else 0
    else:
        x = (-x1 - J) % P
        y = _sqrt(x * (x * (x + J) + 1) % P)
        if y & 1 == 1:  # sgn0(y) == 0
            y = P - y
    return x, y


@lru_cache(maxsize=64)
def _xmd48(dst: bytes) -> tuple[Any, bytes, bytes]:
    """Per-DST constants of the L = 48 expansion: the hash state after Z_pad, and the two tails."""
    dst_prime = _dst_prime(dst, hashlib.sha512)
    return hashlib.sha512(bytes(128)), L.to_bytes(2, "big") + b"\x00" + dst_prime, b"\x01" + dst_prime


def _batch_inverse(values: list[Any]) -> list[Any]:
    """inv0 of every ``mpz`` in [0, p) with one modular inversion (Montgomery's trick); 0 maps to 0."""
    mp = _MP
    prefix, acc = [], gmpy2.mpz(1)
    for v in values:
        prefix.append(acc)
        if v:
            acc = acc * v % mp
    inv = gmpy2.invert(acc, mp)
    out = [v for v in values]  # the zeros stay
    for i in range(len(values) - 1, -1, -1):
        v = values[i]
        if v:
            out[i] = inv * prefix[i] % mp
            inv = inv * v % mp
    return out


def encode_batch(msgs: Sequence[bytes], dst: bytes) -> list[bytes]:
    """u(Q) for each message, Q = map_to_curve(hash_to_field(msg, dst, 1)[0]) (NU suite before
    clear_cofactor), as 32 little-endian bytes."""
    state, tail0, tail1 = _xmd48(dst)
    sha512, copy, from_bytes, mpz = hashlib.sha512, state.copy, int.from_bytes, gmpy2.mpz
    mp, mj, mp_j, jacobi = _MP, _MJ, _MP_J, gmpy2.jacobi
    ds: list[Any] = []
    for msg in msgs:
        h = copy()
        h.update(msg + tail0)
        u = mpz(from_bytes(sha512(h.digest() + tail1).digest()[:L], "big"))
        ds.append((1 + Z * u * u) % mp)
    out: list[bytes] = []
    for inv_d in _batch_inverse(ds):
        x1 = -mj * inv_d % mp or mp_j
        if jacobi(x1 * (x1 * (x1 + mj) + 1), mp) < 0:  # not is_square(gx1)
            x1 = (-x1 - mj) % mp
        out.append(int(x1).to_bytes(32, "little"))
    return out


def encode_to_curve_u(msg: bytes, dst: bytes) -> bytes:
    """u(Q) of one message (see :func:`encode_batch`)."""
    return encode_batch([msg], dst)[0]
