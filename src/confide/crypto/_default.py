"""The default suite: Ed25519 signatures (RFC 8032) and SHA-256, from pyca/cryptography."""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import InvalidKey, InvalidSignature
from .suite import PrivateKey, PublicKey, Suite

_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw


class _EdPublic(PublicKey):
    __slots__ = ("_key", "_raw", "suite")

    def __init__(self, suite: Suite, key: Ed25519PublicKey) -> None:
        self.suite = suite
        self._key = key
        self._raw = key.public_bytes(_RAW, _RAW_PUB)

    def raw(self) -> bytes:
        return self._raw

    def verify(self, signature: bytes, message: bytes) -> None:
        try:
            self._key.verify(signature, message)
        except _CryptoInvalidSignature:
            raise InvalidSignature() from None


class _EdPrivate(PrivateKey):
    __slots__ = ("_key", "_pub", "suite")

    def __init__(self, suite: Suite, key: Ed25519PrivateKey) -> None:
        self.suite = suite
        self._key = key
        self._pub = _EdPublic(suite, key.public_key())

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def public_key(self) -> PublicKey:
        return self._pub

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


class DefaultSuite(Suite):
    name = "default"
    hash_name = "sha256"
    signature_name = "ed25519"

    def hash(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def generate(self) -> PrivateKey:
        return _EdPrivate(self, Ed25519PrivateKey.generate())

    def load_private_pem(self, pem: bytes) -> PrivateKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise InvalidKey(f"cannot parse private key PEM: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidKey("private key is not an Ed25519 key (suite 'default')")
        return _EdPrivate(self, key)

    def load_public(self, raw: bytes) -> PublicKey:
        if len(raw) != 32:
            raise InvalidKey("an Ed25519 public key is 32 bytes")
        try:
            return _EdPublic(self, Ed25519PublicKey.from_public_bytes(raw))
        except ValueError as exc:
            raise InvalidKey(f"bad Ed25519 public key: {exc}") from None
