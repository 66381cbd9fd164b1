"""Batch work done in the process pool: hash-to-curve + first mask, and the second mask.

Top-level functions of a small module, so ``spawn`` workers import little. A key travels to the
worker as a task argument (32 bytes over the pool's local pipe) and lives there only for the call.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .h2c import P, encode_batch
from .interface import PsiProtocolError

__all__ = ["mask_ids", "remask_points"]

_P_BYTES = P.to_bytes(32, "little")


def mask_ids(key: bytes, dst: bytes, ids: list[bytes]) -> bytes:
    """u(clamp(key)·Q(id)) for each canonical ID, concatenated (32 bytes each), in the given order."""
    priv = X25519PrivateKey.from_private_bytes(key)
    exchange, load = priv.exchange, X25519PublicKey.from_public_bytes
    try:
        return b"".join([exchange(load(u)) for u in encode_batch(ids, dst)])
    except ValueError as exc:  # a hash landed on a low-order point: probability ~2^-250
        raise PsiProtocolError("an ID hashed to a low-order point") from exc


def remask_points(key: bytes, blob: bytes, keep: int) -> bytes:
    """The first ``keep`` bytes of u(clamp(key)·U) for each 32-byte point U of the peer.

    Refuses non-canonical encodings (high bit set, u >= p) and points whose product is the identity
    (low order): an honest peer never sends them.
    """
    priv = X25519PrivateKey.from_private_bytes(key)
    exchange, load = priv.exchange, X25519PublicKey.from_public_bytes
    out = []
    for off in range(0, len(blob), 32):
        u = blob[off : off + 32]
        if u[31] >= 0x7F and u[::-1] >= _P_BYTES[::-1]:
            raise PsiProtocolError("peer sent a non-canonical point encoding")
        try:
            out.append(exchange(load(u))[:keep])
        except ValueError as exc:
            raise PsiProtocolError("peer sent a low-order point") from exc
    return b"".join(out)
