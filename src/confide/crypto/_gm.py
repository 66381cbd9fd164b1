"""The ``gm`` suite: SM2 signatures (GB/T 32918.2) and SM3 (GB/T 32905), from tongsuopy.

tongsuopy is the Python binding of Tongsuo (BabaSSL 8.3, OpenSSL 1.1.1 based, C). Its
``key.sign(msg, ec.ECDSA(hashes.SM3()))`` on an SM2-curve key is *real* SM2, not ECDSA over
the SM2 curve: the backend marks such keys ``EVP_PKEY_SM2`` and signs through
``EVP_DigestSign``, whose SM2 method (``pkey_sm2_digest_custom``) prepends
``Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA)`` with the GM/T 0009-2012 default
distinguishing ID ``"1234567812345678"`` when no ID is set; then ``e = SM3(Z_A || M)``.
tests/crypto/test_gm.py pins this: the GB/T 32918.5 Annex A vector verifies, and our
signatures verify under an independent pure-Python SM2 verifier.

Encodings:

* public key (:meth:`PublicKey.raw`, key ids): the 65-byte uncompressed SEC1 point
  ``0x04 || X || Y``; nothing else is accepted;
* signature: DER ``SEQUENCE { r INTEGER, s INTEGER }`` (the GM/T 0009 ``SM2Signature``
  form, usually 70-72 bytes). Tongsuo rejects non-canonical DER and trailing bytes;
* private key: unencrypted PKCS#8 PEM, algorithm ``id-ecPublicKey`` with curve OID
  ``1.2.156.10197.1.301`` (sm2p256v1).

Also here: :func:`sm4_gcm_encrypt` / :func:`sm4_gcm_decrypt` (SM4, GB/T 32907, in GCM mode as
in RFC 8998), a building block for a later AEAD layer; the suite itself does not use it.
"""

from __future__ import annotations

from .errors import ConfideCryptoError, InvalidKey, InvalidSignature, SuiteUnavailable
from .suite import PrivateKey, PublicKey, Suite

try:
    from tongsuopy.crypto import hashes, serialization
    from tongsuopy.crypto.asymciphers import ec
    from tongsuopy.crypto.ciphers.aead import SM4GCM
    from tongsuopy.crypto.exceptions import InternalError as _TsInternalError
    from tongsuopy.crypto.exceptions import InvalidSignature as _TsInvalidSignature
    from tongsuopy.crypto.exceptions import InvalidTag as _TsInvalidTag
    from tongsuopy.crypto.exceptions import UnsupportedAlgorithm as _TsUnsupported
except ImportError as exc:  # pragma: no cover - exercised by a test that hides tongsuopy
    raise SuiteUnavailable(
        f"crypto suite 'gm' needs tongsuopy ({exc}); install it with: pip install 'confide[gm]'"
    ) from exc

__all__ = ["GmSuite", "SM4DecryptionError", "sm4_gcm_decrypt", "sm4_gcm_encrypt"]

_SIG_ALG = ec.ECDSA(hashes.SM3())  # SM2 with SM3 and the default ID (see module docstring)
_X962 = serialization.Encoding.X962
_UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint
_RAW_LEN = 65
_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123  # order of the SM2 group


def _is_sm2(key: object) -> bool:
    return isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SM2
    )


class _Sm2Public(PublicKey):
    __slots__ = ("_key", "_raw", "suite")

    def __init__(self, suite: Suite, key: ec.EllipticCurvePublicKey) -> None:
        self.suite = suite
        self._key = key
        self._raw: bytes = key.public_bytes(_X962, _UNCOMPRESSED)

    def raw(self) -> bytes:
        return self._raw

    def verify(self, signature: bytes, message: bytes) -> None:
        try:
            self._key.verify(signature, message, _SIG_ALG)
        except (_TsInvalidSignature, _TsInternalError, ValueError):
            # Malformed DER makes Tongsuo return -1, which tongsuopy reports as InternalError.
            raise InvalidSignature() from None


class _Sm2Private(PrivateKey):
    __slots__ = ("_key", "_pub", "suite")

    def __init__(self, suite: Suite, key: ec.EllipticCurvePrivateKey) -> None:
        self.suite = suite
        self._key = key
        self._pub = _Sm2Public(suite, key.public_key())

    def sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message, _SIG_ALG))

    def public_key(self) -> PublicKey:
        return self._pub

    def to_pem(self) -> bytes:
        pem: bytes = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return pem


class GmSuite(Suite):
    name = "gm"
    hash_name = "sm3"
    signature_name = "sm2"

    def hash(self, data: bytes) -> bytes:
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        digest: bytes = h.finalize()
        return digest

    def generate(self) -> PrivateKey:
        return _Sm2Private(self, ec.generate_private_key(ec.SM2()))

    def load_private_pem(self, pem: bytes) -> PrivateKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except _TsUnsupported:
            raise InvalidKey("private key is not an SM2 key (suite 'gm')") from None
        except (ValueError, TypeError) as exc:
            raise InvalidKey(f"cannot parse private key PEM: {exc}") from None
        if not _is_sm2(key):
            raise InvalidKey("private key is not an SM2 key (suite 'gm')")
        # Z_A is computed over the *stored* public point, so a file whose public part does not
        # match its scalar would sign unverifiably: re-derive the point and compare.
        numbers = key.private_numbers()
        if not 1 <= numbers.private_value <= _N - 2:  # SM2 needs 1 + d invertible mod n
            raise InvalidKey("SM2 private scalar out of range [1, n-2]")
        derived = ec.derive_private_key(numbers.private_value, ec.SM2())
        if derived.public_key().public_numbers() != numbers.public_numbers:
            raise InvalidKey("SM2 private key: public point does not match the private scalar")
        return _Sm2Private(self, key)

    def load_public(self, raw: bytes) -> PublicKey:
        if len(raw) != _RAW_LEN or raw[0] != 0x04:
            raise InvalidKey("an SM2 public key is the 65-byte uncompressed point 04||X||Y")
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SM2(), bytes(raw))
        except (ValueError, _TsInternalError) as exc:
            raise InvalidKey(f"bad SM2 public key: {exc}") from None
        return _Sm2Public(self, key)


# --- SM4-GCM (RFC 8998 uses exactly this: 16-byte key, 12-byte nonce, 16-byte tag) ---------


class SM4DecryptionError(ConfideCryptoError):
    """SM4-GCM authentication failed (wrong key, nonce, AAD or tampered data). No detail."""

    def __init__(self) -> None:
        super().__init__("decryption failed")


def _check_gcm_params(key: bytes, nonce: bytes) -> None:
    if len(key) != 16:
        raise ValueError("SM4 key must be 16 bytes")
    if len(nonce) != 12:
        raise ValueError("SM4-GCM nonce must be 12 bytes (never reuse one under the same key)")


def sm4_gcm_encrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes = b"") -> bytes:
    """Encrypt ``data`` and authenticate it with ``aad``; return ciphertext || 16-byte tag."""
    _check_gcm_params(key, nonce)
    out: bytes = SM4GCM(key).encrypt(nonce, data, aad)
    return out


def sm4_gcm_decrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes = b"") -> bytes:
    """Inverse of :func:`sm4_gcm_encrypt`; raise :class:`SM4DecryptionError` on any mismatch."""
    _check_gcm_params(key, nonce)
    try:
        out: bytes = SM4GCM(key).decrypt(nonce, data, aad)
    except _TsInvalidTag:
        raise SM4DecryptionError() from None
    return out
