"""TLS for node links, with certificates made from the ledger keys themselves.

Each node's (and the orderer's) certificate is self-signed with the same
Ed25519 key the genesis names for it, so "the peer presented this certificate"
means "the peer holds that ledger key". A consortium's certificates are
collected in one bundle; every process checks each certificate in the bundle
against the genesis keys before trusting it (a swapped certificate fails
closed) and then uses the bundle as its only trust anchors. Server identity
comes from TLS; client identity from the signed request (``httpsig``), also a
ledger key — so both ends of every link are authenticated with ledger keys and
the traffic is encrypted.

Only the ``default`` suite: stock TLS has no SM2 (TLCP needs Tongsuo's TLS
stack), so gm consortia are refused with a clear message rather than silently
downgraded.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from .errors import InvalidKey
from .identity import Identity

__all__ = ["TlsUnsupported", "check_bundle", "check_own_certificate", "client_context", "make_certificate"]


class TlsUnsupported(InvalidKey):
    """TLS cannot be built from this suite's keys."""


def make_certificate(identity: Identity, name: str, *, not_before: dt.datetime, years: int = 10) -> bytes:
    """Self-signed certificate for ``identity``'s key, valid for 127.0.0.1, localhost and ``name``."""
    if identity.suite.name != "default":
        raise TlsUnsupported(
            f"TLS needs Ed25519 keys (suite 'default'); suite {identity.suite.name!r} has none"
        )
    key = serialization.load_pem_private_key(identity.key.to_pem(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Confide consortium"),
        ]
    )
    san = x509.SubjectAlternativeName(
        [x509.DNSName(name), x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(identity.suite.hash(identity.public_key.raw())[:16], "big") >> 1)
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=365 * years))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, algorithm=None)
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _raw_key(cert: x509.Certificate) -> bytes:
    pub = cert.public_key()
    if not isinstance(pub, Ed25519PublicKey):
        raise InvalidKey("certificate key is not Ed25519")
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def check_bundle(bundle: Path, allowed_public_keys: Iterable[str]) -> None:
    """Refuse a bundle holding any certificate whose key is not a ledger key we know."""
    allowed = set(allowed_public_keys)
    certs = x509.load_pem_x509_certificates(bundle.read_bytes())
    if not certs:
        raise InvalidKey(f"{bundle} holds no certificates")
    for cert in certs:
        if _raw_key(cert).hex() not in allowed:
            cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            name = str(cn[0].value) if cn else "?"
            raise InvalidKey(f"certificate {name} in {bundle} is not for a genesis key")


def check_own_certificate(cert: Path, identity: Identity) -> None:
    """A process serves TLS only with a certificate for its own ledger key."""
    (c,) = x509.load_pem_x509_certificates(cert.read_bytes())
    if _raw_key(c) != identity.public_key.raw():
        raise InvalidKey(f"{cert} is not the certificate of this process's key")


def client_context(bundle: Path) -> ssl.SSLContext:
    """Trust exactly the consortium's certificates (hostname checked)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(bundle))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx
