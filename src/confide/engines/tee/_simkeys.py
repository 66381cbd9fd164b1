"""The simulated key chain, root -> attestation key, and the ECDSA conventions of simulated quotes.

Sharp internals of the ``simulated`` TEE backend; ``attestation.py`` re-exports the public names.
Every key is ECDSA P-256 with SHA-256, signing deterministically (RFC 6979) and normalised to low-s;
every signature is 64 bytes r || s and every key in a quote 64 bytes x || y (DCAP's encodings).
Low-s gives a quote exactly one valid encoding, so nobody can change its digest (which salts the
channel and goes on the ledger) by re-encoding a signature.

The :class:`SimulatedRoot` plays Intel's role; its SEC1 uncompressed public key (65 bytes,
04 || x || y) sits in the consortium genesis. It certifies an :class:`AttestationKey` by signing a
384-byte SGX report body, DCAP's *QE report*, which is the certification statement. Its exact bytes
(layout in ``quote.py``): CPUSVN 16 zero bytes; MISCSELECT 0; ATTRIBUTES ``SIMULATED_ATTRIBUTES``
(flags INIT|DEBUG|MODE64BIT, xfrm 3); MRENCLAVE = SHA-256(b"confide/tee/simulated/qe-mrenclave/v1");
MRSIGNER = SHA-256(b"confide/tee/simulated/qe-mrsigner/v1"); ISV_PROD_ID 1; ISV_SVN = qe_svn;
reserved regions zero; REPORT_DATA = SHA-256(attestation key x || y || AUTH_DATA) || 32 zero bytes,
AUTH_DATA being the 32-byte tag ``b"CONFIDE-SIM-ATTESTATION-KEY-V1\\0\\0"``. That REPORT_DATA is
DCAP's own binding of the attestation key to the QE report. The root signs statements of this one
fixed shape and nothing else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .quote import ReportBody, parse_report_body

__all__ = [
    "AUTH_DATA",
    "AttestationKey",
    "Certification",
    "SimulatedRoot",
    "load_public",
    "qe_report",
    "verifies",
]

AUTH_DATA = b"CONFIDE-SIM-ATTESTATION-KEY-V1\x00\x00"
SIM_QE_MRENCLAVE = hashlib.sha256(b"confide/tee/simulated/qe-mrenclave/v1").digest()
SIM_QE_MRSIGNER = hashlib.sha256(b"confide/tee/simulated/qe-mrsigner/v1").digest()
SIM_QE_PROD_ID = 1
_CURVE = ec.SECP256R1()
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # order of the P-256 group
_SIGN = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
_VERIFY = ec.ECDSA(hashes.SHA256())


def _exact(value: bytes, size: int, name: str) -> None:
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(value)}")


def _sign(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(message, _SIGN))
    s = min(s, _N - s)  # low-s
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verifies(key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    """True iff ``signature`` (64 bytes r || s, low-s) is ``key``'s signature over ``message``."""
    if len(signature) != 64:
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < _N and 0 < s <= _N // 2):
        return False
    try:
        key.verify(encode_dss_signature(r, s), message, _VERIFY)
    except InvalidSignature:
        return False
    return True


def load_public(encoded: bytes) -> ec.EllipticCurvePublicKey:
    """Load a SEC1 uncompressed P-256 point (65 bytes); raise ``ValueError`` otherwise."""
    if len(encoded) != 65 or encoded[0] != 4:
        raise ValueError("expected a 65-byte SEC1 uncompressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, encoded)


def _load_private(scalar: bytes) -> ec.EllipticCurvePrivateKey:
    _exact(scalar, 32, "P-256 private key")
    return ec.derive_private_key(int.from_bytes(scalar, "big"), _CURVE)


def _scalar(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_numbers().private_value.to_bytes(32, "big")


def _sec1(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def qe_report(attestation_public_key: bytes, qe_svn: int) -> ReportBody:
    """The certification statement the root signs for an attestation key (see the module docstring)."""
    _exact(attestation_public_key, 64, "attestation public key")
    binding = hashlib.sha256(attestation_public_key + AUTH_DATA).digest() + bytes(32)
    return ReportBody(SIM_QE_MRENCLAVE, SIM_QE_MRSIGNER, SIM_QE_PROD_ID, qe_svn, binding)


@dataclass(frozen=True, slots=True)
class Certification:
    """An attestation key's certificate: the QE report body, the root's signature on it, the root key."""

    qe_report: bytes
    signature: bytes
    root_public_key: bytes


class SimulatedRoot:
    """The simulated attestation root (Intel's role). Its :attr:`public_key_hex` goes into genesis."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError("the simulated root is a P-256 key")
        self._key = private_key
        self.public_key = _sec1(private_key)

    @classmethod
    def generate(cls) -> SimulatedRoot:
        return cls(ec.generate_private_key(_CURVE))

    @classmethod
    def from_private_bytes(cls, scalar: bytes) -> SimulatedRoot:
        """Load from the 32-byte big-endian private scalar."""
        return cls(_load_private(scalar))

    def private_bytes(self) -> bytes:
        """The 32-byte big-endian private scalar (whoever holds it can forge quotes)."""
        return _scalar(self._key)

    @property
    def public_key_hex(self) -> str:
        """Hex of the SEC1 uncompressed public key (04 || x || y), as carried in genesis."""
        return self.public_key.hex()

    def certify(self, attestation_public_key: bytes, *, qe_svn: int) -> Certification:
        """Sign the certification statement for ``attestation_public_key`` (64 bytes, x || y)."""
        statement = qe_report(attestation_public_key, qe_svn).to_bytes()
        return Certification(statement, _sign(self._key, statement), self.public_key)


class AttestationKey:
    """A quoting key certified by a :class:`SimulatedRoot`; the enclave host signs quotes with it."""

    def __init__(self, private_key: bytes, certification: Certification, *, pce_svn: int = 1) -> None:
        self._key = _load_private(private_key)
        self.public_key = _sec1(self._key)[1:]  # x || y, as in the quote
        self.certification = certification
        self.qe_svn = parse_report_body(certification.qe_report).isv_svn
        if certification.qe_report != qe_report(self.public_key, self.qe_svn).to_bytes():
            raise ValueError("the certification is for another attestation key")
        self.pce_svn = pce_svn

    @classmethod
    def create(
        cls, root: SimulatedRoot, *, private_key: bytes | None = None, qe_svn: int = 1, pce_svn: int = 1
    ) -> AttestationKey:
        """A fresh key (or the given 32-byte scalar), certified by ``root`` at ``qe_svn``."""
        key = _load_private(private_key) if private_key is not None else ec.generate_private_key(_CURVE)
        cert = root.certify(_sec1(key)[1:], qe_svn=qe_svn)
        return cls(_scalar(key), cert, pce_svn=pce_svn)

    def private_bytes(self) -> bytes:
        return _scalar(self._key)

    def sign(self, message: bytes) -> bytes:
        """ECDSA P-256 / SHA-256, RFC 6979, low-s, as 64 bytes r || s."""
        return _sign(self._key, message)
