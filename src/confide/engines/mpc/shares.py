"""Additive secret shares over Z_2^64 and the PRG that lets a share travel as a 32-byte seed.

A value ``x`` (a numpy ``uint64`` array) is split among ``n`` parties as ``x_0 + ... + x_{n-1} =
x (mod 2^64)``; any ``n - 1`` shares are uniformly random and say nothing about ``x``.
Addition, subtraction and multiplication by a public integer are local. A public constant is added
by party 0 only.

``prg`` expands a 32-byte seed with AES-256-CTR (key = seed, a 64-bit stream index in the counter
block) into uniform ``uint64`` words, so a random share can be sent as its seed: ``share_seeded``
returns ``(seed, x - prg(seed))``; the holder of the seed expands it to its share.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import MpcError
from .fixedpoint import Ring

SEED_BYTES = 32
RandomBytes = Callable[[int], bytes]


def prg(seed: bytes, shape: int | tuple[int, ...], stream: int = 0) -> Ring:
    """Uniform ring elements of ``shape`` from ``seed`` (AES-256-CTR, counter block = stream || 0)."""
    if len(seed) != SEED_BYTES:
        raise MpcError(f"PRG seed must be {SEED_BYTES} bytes, got {len(seed)}")
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    enc = Cipher(algorithms.AES(seed), modes.CTR(struct.pack(">QQ", stream, 0))).encryptor()
    raw = enc.update(bytes(8 * count)) + enc.finalize()
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64, copy=False).reshape(dims)


def random_ring(shape: int | tuple[int, ...], random_bytes: RandomBytes = os.urandom) -> Ring:
    """Uniform ring elements from a fresh seed."""
    return prg(random_bytes(SEED_BYTES), shape)


def share(x: Ring, n_parties: int, random_bytes: RandomBytes = os.urandom) -> list[Ring]:
    """Split ``x`` into ``n_parties`` additive shares (the first ``n - 1`` uniform)."""
    if n_parties < 2:
        raise MpcError("sharing needs at least two parties")
    x = np.asarray(x, dtype=np.uint64)
    out = [random_ring(x.shape, random_bytes) for _ in range(n_parties - 1)]
    last = x.copy()
    for s in out:
        last -= s
    out.append(last)
    return out


def share_seeded(x: Ring, random_bytes: RandomBytes = os.urandom) -> tuple[bytes, Ring]:
    """Two-party sharing where the other party's share is ``prg(seed)``: returns (seed, own share)."""
    seed = random_bytes(SEED_BYTES)
    x = np.asarray(x, dtype=np.uint64)
    return seed, x - prg(seed, x.shape)


def reconstruct(shares: Sequence[Ring]) -> Ring:
    """Sum of all shares mod 2^64."""
    if not shares:
        raise MpcError("reconstruct needs at least one share")
    total = np.array(shares[0], dtype=np.uint64, copy=True)
    for s in shares[1:]:
        if np.shape(s) != total.shape:
            raise MpcError(f"share shapes differ: {np.shape(s)} vs {total.shape}")
        total += np.asarray(s, dtype=np.uint64)
    return total


def add(x: Ring, y: Ring) -> Ring:
    return np.asarray(x, dtype=np.uint64) + np.asarray(y, dtype=np.uint64)


def sub(x: Ring, y: Ring) -> Ring:
    return np.asarray(x, dtype=np.uint64) - np.asarray(y, dtype=np.uint64)


def mul_public(x: Ring, k: int | Ring) -> Ring:
    """Share times a public integer (ring element); for a fixed-point constant, truncate after."""
    kk = np.asarray(k % 2**64 if isinstance(k, int) else k, dtype=np.uint64)
    return np.asarray(x, dtype=np.uint64) * kk


def add_public(x: Ring, c: Ring, party: int) -> Ring:
    """Add a public ring constant: only party 0 adds it, the others keep their share."""
    x = np.asarray(x, dtype=np.uint64)
    return x + np.asarray(c, dtype=np.uint64) if party == 0 else x.copy()


def public_share(c: Ring, party: int) -> Ring:
    """This party's share of a public constant (party 0 holds it, others zero)."""
    c = np.asarray(c, dtype=np.uint64)
    return c.copy() if party == 0 else np.zeros_like(c)
