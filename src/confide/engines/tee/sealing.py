"""Sealing: data an enclave encrypts for itself (or its signer's later versions) on one platform.

Simulates SGX EGETKEY sealing keys. Each platform has a 32-byte sealing root (stored 0600 by the
enclave host). The key for a blob is::

    okm    = HKDF-SHA256(ikm=root, salt=none, length=48,
                         info=b"confide/seal/v1\\x00" || policy byte || identity (32) || svn (u16 BE))
    key    = okm[:32] (AES-256-GCM);  key_id = okm[32:48]

where policy 1 = MRENCLAVE (identity = the measurement: any code change loses access) and
policy 2 = MRSIGNER (identity = the signer: later builds of the same signer keep access).

Blob (integers big-endian)::

    magic b"CFSL" (4) | version 1 (1) | policy (1) | svn at seal (2) | key id (16) | nonce (12)
    || AES-256-GCM(data, AAD = those 36 header bytes || caller aad) || tag (16)

As in SGX an enclave may derive keys for its own SVN or a lower one, never a higher one: unseal
refuses a blob sealed at a higher SVN than the caller's, and otherwise derives the key for the
blob's SVN. Every refusal is one opaque :class:`SealError`; ``detail`` is for logs only.

Simulation caveat: whoever holds the root file (the host) can derive every sealing key.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ...crypto.files import atomic_write, read_private

__all__ = ["Policy", "SealError", "SealingRoot", "load_sealing_root", "seal", "unseal"]

Policy = Literal["mrenclave", "mrsigner"]
POLICIES: dict[str, int] = {"mrenclave": 1, "mrsigner": 2}
MAGIC, VERSION = b"CFSL", 1
HEADER = struct.Struct(">4sBBH16s12s")
TAG_LEN = 16
LABEL = b"confide/seal/v1\x00"
OPAQUE = "sealed data cannot be opened"


class SealError(Exception):
    """A sealed blob did not open. ``str()`` says nothing specific; ``detail`` is for logs only."""

    def __init__(self, detail: str) -> None:
        super().__init__(OPAQUE)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SealingRoot:
    """A platform's 32-byte sealing root (the simulated stand-in for the CPU's fused key)."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise ValueError("a sealing root is 32 bytes")

    def __repr__(self) -> str:
        return "SealingRoot(<secret>)"

    @classmethod
    def generate(cls) -> SealingRoot:
        return cls(os.urandom(32))

    def save(self, path: str | Path) -> Path:
        """Write the root with mode 0600 via a fresh 0600 temp file renamed over ``path``."""
        return atomic_write(path, self.secret)


def load_sealing_root(path: str | Path) -> SealingRoot:
    """Load a root; refuse files readable by group or others."""
    return SealingRoot(read_private(path, "sealing root"))


def _policy_code(policy: str, mrenclave: bytes, mrsigner: bytes, isv_svn: int) -> tuple[int, bytes]:
    """Validate the caller's identity; return the policy byte and the identity the key binds."""
    if policy not in POLICIES:
        raise ValueError(f"unknown sealing policy {policy!r}; valid: {', '.join(POLICIES)}")
    if len(mrenclave) != 32 or len(mrsigner) != 32:
        raise ValueError("mrenclave and mrsigner must be 32 bytes each")
    if not 0 <= isv_svn <= 0xFFFF:
        raise ValueError("isv_svn must fit in 16 bits")
    return POLICIES[policy], mrenclave if policy == "mrenclave" else mrsigner


def seal_key(root: SealingRoot, policy_code: int, identity: bytes, svn: int) -> tuple[bytes, bytes]:
    """(AES-256 key, 16-byte key id) for one policy, identity and SVN on one platform."""
    info = LABEL + bytes([policy_code]) + identity + svn.to_bytes(2, "big")
    okm = HKDF(algorithm=hashes.SHA256(), length=48, salt=None, info=info).derive(root.secret)
    return okm[:32], okm[32:]


def seal(
    root: SealingRoot,
    policy: Policy,
    *,
    mrenclave: bytes,
    mrsigner: bytes,
    isv_svn: int,
    data: bytes,
    aad: bytes = b"",
    nonce: bytes | None = None,
) -> bytes:
    """Encrypt ``data`` so only this platform and identity at ``isv_svn`` or above can open it.

    ``nonce`` exists for known-answer tests; never pass it otherwise (a random one is drawn).
    """
    code, identity = _policy_code(policy, mrenclave, mrsigner, isv_svn)
    nonce = nonce if nonce is not None else os.urandom(12)
    if len(nonce) != 12:
        raise ValueError("nonce must be 12 bytes")
    key, key_id = seal_key(root, code, identity, isv_svn)
    header = HEADER.pack(MAGIC, VERSION, code, isv_svn, key_id, nonce)
    return header + AESGCM(key).encrypt(nonce, data, header + aad)


def unseal(
    root: SealingRoot,
    policy: Policy,
    *,
    mrenclave: bytes,
    mrsigner: bytes,
    isv_svn: int,
    blob: bytes,
    aad: bytes = b"",
) -> bytes:
    """Open a blob as the enclave (``mrenclave``, ``mrsigner``, ``isv_svn``) running now.

    Raises :class:`SealError` for another platform, identity or policy, a blob sealed at a higher
    SVN than ``isv_svn``, other ``aad``, or any altered byte.
    """
    code, identity = _policy_code(policy, mrenclave, mrsigner, isv_svn)
    if len(blob) < HEADER.size + TAG_LEN:
        raise SealError("malformed: blob too short")
    magic, version, blob_code, sealed_svn, key_id, nonce = HEADER.unpack_from(blob)
    if (magic, version) != (MAGIC, VERSION):
        raise SealError("malformed: not a sealed blob of this version")
    if blob_code != code:
        raise SealError(f"policy: sealed under policy {blob_code}, asked for {code}")
    if sealed_svn > isv_svn:
        raise SealError(f"svn: sealed at SVN {sealed_svn}, enclave runs at {isv_svn}")
    key, expected_id = seal_key(root, code, identity, sealed_svn)
    if not hmac.compare_digest(key_id, expected_id):
        raise SealError("key-id: another identity or platform")
    try:
        return AESGCM(key).decrypt(nonce, blob[HEADER.size :], blob[: HEADER.size] + aad)
    except InvalidTag:
        raise SealError("auth: blob or aad altered") from None
