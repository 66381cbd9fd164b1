"""Fabric identities: an MSP id with an X.509 certificate, ECDSA P-256 keys, low-S signatures.

A Fabric client signs its proposals, envelopes and Gateway requests with the key of a certificate
its organization's CA issued; peers check the certificate against the MSP's CA and the signature
(ECDSA over SHA-256, DER, with ``s`` in the lower half of the group order as Fabric requires). The
``creator`` bytes everywhere are the ``msp.SerializedIdentity`` (MSP id + certificate PEM).

``issue_ca`` / ``issue_cert`` make test and stand-in material (docs/ledger-fabric.md says where a
real network's certificates come from).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509.oid import NameOID
from fabric_protos.msp import identities_pb2

from ..errors import LedgerError

__all__ = [
    "FabricIdentity",
    "FabricIdentityError",
    "MspVerifier",
    "issue_ca",
    "issue_cert",
    "serialize_identity",
]

# the order of the P-256 group: Fabric refuses signatures whose s is above half of it
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class FabricIdentityError(LedgerError):
    """A certificate or key that cannot be used, or a signature that does not verify."""


def serialize_identity(msp_id: str, cert_pem: bytes) -> bytes:
    return identities_pb2.SerializedIdentity(mspid=msp_id, id_bytes=cert_pem).SerializeToString()  # type: ignore[no-any-return]


def _low_s(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return encode_dss_signature(r, _N - s) if s > _N // 2 else der


@dataclass(frozen=True)
class FabricIdentity:
    msp_id: str
    cert_pem: bytes
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def load(cls, msp_id: str, cert_path: str | Path, key_path: str | Path) -> FabricIdentity:
        try:
            cert_pem = Path(cert_path).read_bytes()
            key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_pem)
        except (OSError, ValueError) as exc:
            raise FabricIdentityError(
                f"cannot load the Fabric identity ({cert_path}, {key_path}): {exc}"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise FabricIdentityError(f"{key_path}: a Fabric key is ECDSA P-256")
        pub = cert.public_key()
        if (
            not isinstance(pub, ec.EllipticCurvePublicKey)
            or pub.public_numbers() != key.public_key().public_numbers()
        ):
            raise FabricIdentityError(f"{key_path} is not the key of the certificate {cert_path}")
        return cls(msp_id, cert_pem, key)

    def __reduce__(self) -> tuple[object, tuple[str, bytes, bytes]]:  # to hand it to a worker process
        return _identity_from_pem, (self.msp_id, self.cert_pem, key_pem(self.key))

    @property
    def creator(self) -> bytes:
        return serialize_identity(self.msp_id, self.cert_pem)

    def sign(self, message: bytes) -> bytes:
        return _low_s(self.key.sign(message, ec.ECDSA(hashes.SHA256())))


class MspVerifier:
    """Checks creators and signatures against the channel's MSPs (MSP id -> CA certificate PEM)."""

    def __init__(self, cas: dict[str, bytes]) -> None:
        self.cas = {m: x509.load_pem_x509_certificate(pem) for m, pem in cas.items()}

    def certificate(self, creator: bytes) -> tuple[str, x509.Certificate]:
        """The MSP id and certificate of serialized identity ``creator``, checked against its CA."""
        ident = identities_pb2.SerializedIdentity()
        try:
            ident.ParseFromString(creator)
            cert = x509.load_pem_x509_certificate(ident.id_bytes)
        except Exception as exc:
            raise FabricIdentityError(f"the creator is not a serialized X.509 identity: {exc}") from exc
        ca = self.cas.get(ident.mspid)
        if ca is None:
            raise FabricIdentityError(f"MSP {ident.mspid!r} is not a member of this channel")
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise FabricIdentityError(f"the certificate was not issued by MSP {ident.mspid}'s CA") from exc
        now = datetime.datetime.now(datetime.UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise FabricIdentityError("the certificate is expired or not yet valid")
        return ident.mspid, cert

    def verify(self, creator: bytes, message: bytes, signature: bytes) -> str:
        """The MSP id of ``creator`` when ``signature`` is its valid low-S signature of ``message``."""
        msp_id, cert = self.certificate(creator)
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise FabricIdentityError("the certificate's key is not ECDSA")
        try:
            _, s = decode_dss_signature(signature)
            if s > _N // 2:
                raise FabricIdentityError("the signature's S is high (Fabric accepts low-S only)")
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except (ValueError, InvalidSignature) as exc:
            raise FabricIdentityError(f"the signature of {msp_id}'s identity does not verify") from exc
        return msp_id


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def issue_ca(org: str) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A self-signed CA for organization ``org`` (certificate PEM, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"ca.{org}", org))
        .issuer_name(_name(f"ca.{org}", org))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key


def issue_cert(
    ca_pem: bytes, ca_key: ec.EllipticCurvePrivateKey, cn: str, org: str, *, hosts: tuple[str, ...] = ()
) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A client or peer certificate issued by ``ca`` (certificate PEM, key); ``hosts``: the DNS
    names and IP addresses a TLS server certificate is for."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
    )
    if hosts:
        names: list[x509.GeneralName] = []
        for h in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                names.append(x509.DNSName(h))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), key


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _identity_from_pem(msp_id: str, cert_pem: bytes, key: bytes) -> FabricIdentity:
    loaded = serialization.load_pem_private_key(key, password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    return FabricIdentity(msp_id, cert_pem, loaded)
