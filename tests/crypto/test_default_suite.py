"""Tests of the ``default`` suite (Ed25519 per RFC 8032 + SHA-256) and of the suite registry.

Ed25519 known answers live in ``vectors/ed25519_rfc8032.json`` (RFC 8032 section 7.1). Every failed
verification must surface as exactly :class:`InvalidSignature` with its opaque message, whatever the
cause; malformed key material must surface as :class:`InvalidKey`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from confide.crypto._default import DefaultSuite, _EdPrivate
from confide.crypto.errors import InvalidKey, InvalidSignature, UnknownSuite
from confide.crypto.suite import available_suites, get_suite

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "vectors" / "ed25519_rfc8032.json").read_text()
)["vectors"]
VECTOR_IDS = [v["name"] for v in VECTORS]
SUITE = get_suite("default")
OPAQUE = "signature verification failed"
# Order of the Ed25519 base point (RFC 8032 section 5.1).
ED25519_L = 2**252 + 27742317777372353535851937790883648493


def _private_from_seed(seed_hex: str) -> _EdPrivate:
    return _EdPrivate(SUITE, Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex)))


def _flip_bit(data: bytes, byte: int, bit: int) -> bytes:
    out = bytearray(data)
    out[byte] ^= 1 << bit
    return bytes(out)


def _pkcs8_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _sm2_pkcs8_pem() -> bytes:
    """A PKCS#8 EC key naming the SM2 curve (OID 1.2.156.10197.1.301), as the ``gm`` suite writes.

    Built from a P-256 PKCS#8 key by swapping the curve OID (both are 8-byte OIDs), so no Tongsuo is needed.
    """
    der = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    p256_oid, sm2_oid = bytes.fromhex("06082a8648ce3d030107"), bytes.fromhex("06082a811ccf5501822d")
    assert p256_oid in der
    body = base64.encodebytes(der.replace(p256_oid, sm2_oid))
    return b"-----BEGIN PRIVATE KEY-----\n" + body + b"-----END PRIVATE KEY-----\n"


# --- registry ---------------------------------------------------------------------------------------


def test_registry_returns_cached_default_suite() -> None:
    # Prepare / Execute
    first, second = get_suite("default"), get_suite("default")

    # Assert
    assert isinstance(first, DefaultSuite)
    assert first is second
    assert (first.name, first.hash_name, first.signature_name) == ("default", "sha256", "ed25519")


def test_available_suites_lists_default_and_gm() -> None:
    # Prepare / Execute
    names = available_suites()

    # Assert
    assert names == sorted(names)
    assert {"default", "gm"} <= set(names)


def test_unknown_suite_raises_typed_error_listing_valid_names() -> None:
    # Prepare
    name = "nope"

    # Execute
    with pytest.raises(UnknownSuite) as exc_info:
        get_suite(name)

    # Assert
    message = str(exc_info.value)
    assert "'nope'" in message
    assert "default" in message
    assert "gm" in message
    assert exc_info.value.name == "nope"
    assert {"default", "gm"} <= set(exc_info.value.valid)
    assert isinstance(exc_info.value, LookupError)


# --- hash -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "digest"),
    [
        # FIPS 180-2 appendix B.1 ("abc") and the empty-string digest.
        (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        # FIPS 180-2 appendix B.2 (448-bit message).
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
    ],
    ids=["abc", "empty", "two-block"],
)
def test_hash_is_sha256_known_answer(message: bytes, digest: str) -> None:
    # Prepare
    expected = bytes.fromhex(digest)

    # Execute
    got = SUITE.hash(message)

    # Assert
    assert got == expected


# --- Ed25519 known answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_private_key_derives_rfc8032_public_key(vector: dict[str, Any]) -> None:
    # Prepare
    key = _private_from_seed(vector["secret_key"])

    # Execute
    public_raw = key.public_key().raw()

    # Assert
    assert public_raw.hex() == vector["public_key"]
    assert key.public_key().suite is SUITE


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_sign_produces_rfc8032_signature(vector: dict[str, Any]) -> None:
    # Prepare
    key = _private_from_seed(vector["secret_key"])

    # Execute
    signature = key.sign(bytes.fromhex(vector["message"]))

    # Assert
    assert signature.hex() == vector["signature"]


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_rfc8032_signature_verifies_with_loaded_public_key(vector: dict[str, Any]) -> None:
    # Prepare
    public = SUITE.load_public(bytes.fromhex(vector["public_key"]))

    # Execute
    result = public.verify(bytes.fromhex(vector["signature"]), bytes.fromhex(vector["message"]))

    # Assert
    assert result is None
    assert public.raw().hex() == vector["public_key"]


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_key_id_is_sha256_hex_of_raw_public_key(vector: dict[str, Any]) -> None:
    # Prepare
    public = SUITE.load_public(bytes.fromhex(vector["public_key"]))

    # Execute
    key_id = public.key_id()

    # Assert
    assert key_id == hashlib.sha256(bytes.fromhex(vector["public_key"])).hexdigest()


# --- verification failures are opaque -------------------------------------------------------------------


def _tampered_cases() -> list[Any]:
    cases = []
    other_key = VECTORS[1]["public_key"]
    for v in VECTORS:
        sig, msg, pub = bytes.fromhex(v["signature"]), bytes.fromhex(v["message"]), v["public_key"]
        s_plus_l = (int.from_bytes(sig[32:], "little") + ED25519_L).to_bytes(32, "little")
        wrong_pub = other_key if pub != other_key else VECTORS[0]["public_key"]
        name = v["name"]
        cases += [
            pytest.param(pub, _flip_bit(sig, 0, 0), msg, id=f"{name}: flipped bit in R"),
            pytest.param(pub, _flip_bit(sig, 40, 5), msg, id=f"{name}: flipped bit in S"),
            pytest.param(pub, _flip_bit(sig, 63, 7), msg, id=f"{name}: flipped top bit of S"),
            pytest.param(pub, sig[:32] + s_plus_l, msg, id=f"{name}: non-canonical S + L"),
            pytest.param(pub, sig, msg + b"\x00", id=f"{name}: extended message"),
            pytest.param(pub, sig, msg[:-1], id=f"{name}: truncated message") if msg else None,
            pytest.param(pub, sig, _flip_bit(msg, 0, 0), id=f"{name}: flipped bit in message")
            if msg
            else None,
            pytest.param(wrong_pub, sig, msg, id=f"{name}: wrong public key"),
            pytest.param(pub, sig[:63], msg, id=f"{name}: truncated signature"),
            pytest.param(pub, sig + b"\x00", msg, id=f"{name}: extended signature"),
            pytest.param(pub, b"", msg, id=f"{name}: empty signature"),
            pytest.param(pub, bytes(64), msg, id=f"{name}: all-zero signature"),
        ]
    return [c for c in cases if c is not None]


@pytest.mark.parametrize(("public_hex", "signature", "message"), _tampered_cases())
def test_verify_rejects_tampered_input_with_opaque_error(
    public_hex: str, signature: bytes, message: bytes
) -> None:
    # Prepare
    public = SUITE.load_public(bytes.fromhex(public_hex))

    # Execute
    with pytest.raises(InvalidSignature) as exc_info:
        public.verify(signature, message)

    # Assert
    assert type(exc_info.value) is InvalidSignature
    assert str(exc_info.value) == OPAQUE
    assert exc_info.value.__cause__ is None
    assert exc_info.value.__suppress_context__ is True


def test_generated_key_signs_and_verifies_and_rejects_other_message() -> None:
    # Prepare
    key = SUITE.generate()
    public = SUITE.load_public(key.public_key().raw())
    signature = key.sign(b"payload")

    # Execute
    result = public.verify(signature, b"payload")
    with pytest.raises(InvalidSignature) as exc_info:
        public.verify(signature, b"payloae")

    # Assert
    assert result is None
    assert len(signature) == 64
    assert str(exc_info.value) == OPAQUE


def test_generate_returns_fresh_keys() -> None:
    # Prepare / Execute
    raws = {SUITE.generate().public_key().raw() for _ in range(8)}

    # Assert
    assert len(raws) == 8
    assert all(len(raw) == 32 for raw in raws)


# --- key loading --------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_load_public_rejects_wrong_length(length: int) -> None:
    # Prepare
    raw = bytes(range(length))

    # Execute
    with pytest.raises(InvalidKey) as exc_info:
        SUITE.load_public(raw)

    # Assert
    assert type(exc_info.value) is InvalidKey
    assert "32 bytes" in str(exc_info.value)


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_pem_round_trip_keeps_key(vector: dict[str, Any]) -> None:
    # Prepare
    key = _private_from_seed(vector["secret_key"])
    pem = key.to_pem()

    # Execute
    loaded = SUITE.load_private_pem(pem)

    # Assert
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert loaded.public_key().raw().hex() == vector["public_key"]
    assert loaded.sign(bytes.fromhex(vector["message"])).hex() == vector["signature"]


def _encrypted_ed25519_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        pytest.param(b"garbage", "cannot parse private key PEM", id="garbage"),
        pytest.param(b"", "cannot parse private key PEM", id="empty"),
        pytest.param(
            b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
            "cannot parse private key PEM",
            id="PEM armour around non-DER",
        ),
        pytest.param(
            Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            "cannot parse private key PEM",
            id="Ed25519 public key PEM",
        ),
        pytest.param(_encrypted_ed25519_pem(), "cannot parse private key PEM", id="encrypted PEM"),
        pytest.param(
            _pkcs8_pem(ec.generate_private_key(ec.SECP256R1())),
            "not an Ed25519 key",
            id="EC P-256 PEM",
        ),
        pytest.param(
            _pkcs8_pem(x25519.X25519PrivateKey.generate()),
            "not an Ed25519 key",
            id="X25519 PEM",
        ),
    ],
)
def test_load_private_pem_rejects_foreign_material(pem: bytes, message: str) -> None:
    # Prepare
    expected_type = InvalidKey

    # Execute
    with pytest.raises(expected_type) as exc_info:
        SUITE.load_private_pem(pem)

    # Assert
    assert type(exc_info.value) is expected_type
    assert message in str(exc_info.value)


def test_load_private_pem_rejects_sm2_key_of_gm_suite() -> None:
    # Prepare
    pem = _sm2_pkcs8_pem()

    # Execute
    with pytest.raises(InvalidKey) as exc_info:
        SUITE.load_private_pem(pem)

    # Assert
    assert "Ed25519" in str(exc_info.value) or "cannot parse" in str(exc_info.value)
