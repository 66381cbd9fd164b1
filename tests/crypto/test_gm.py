"""Tests of the ``gm`` suite (SM2 + SM3, SM4-GCM helper) against known answers and properties.

Vectors live in ``vectors/gm_kat.json`` with their sources. Besides the published GB/T 32918
example, signatures made by the suite are re-checked by a small pure-Python SM2 verifier (only
SM3 is shared with tongsuopy, and SM3 has its own KATs), which pins that tongsuopy signs
``e = SM3(Z_A || M)`` with the default ID rather than plain ECDSA over the SM2 curve.
"""

from __future__ import annotations

import base64
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tongsuopy")

from cryptography.hazmat.primitives import serialization as pyca_serialization
from cryptography.hazmat.primitives.asymmetric import ec as pyca_ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from tongsuopy.crypto import serialization as ts_serialization
from tongsuopy.crypto.asymciphers import ec as ts_ec
from tongsuopy.crypto.ciphers import Cipher, algorithms, modes

from confide.crypto._gm import (
    GmSuite,
    SM4DecryptionError,
    sm4_gcm_decrypt,
    sm4_gcm_encrypt,
)
from confide.crypto.errors import InvalidKey, InvalidSignature, SuiteUnavailable
from confide.crypto.suite import get_suite

KAT: dict[str, Any] = json.loads((Path(__file__).parent / "vectors" / "gm_kat.json").read_text())
SUITE = GmSuite()
DEFAULT_ID = b"1234567812345678"

# --- independent pure-Python SM2 verifier (GB/T 32918.2 section 7), affine arithmetic -------

P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
G = (
    0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
)
Point = tuple[int, int] | None


def _add(p1: Point, p2: Point) -> Point:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    num, den = (3 * x1 * x1 + A, 2 * y1) if p1 == p2 else (y2 - y1, x2 - x1)
    lam = num * pow(den, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P


def _mul(k: int, pt: Point) -> Point:
    acc: Point = None
    while k:
        if k & 1:
            acc = _add(acc, pt)
        pt = _add(pt, pt)
        k >>= 1
    return acc


def _z(uid: bytes, pub: bytes) -> bytes:
    params = b"".join(v.to_bytes(32, "big") for v in (A, B, *G))
    return SUITE.hash((len(uid) * 8).to_bytes(2, "big") + uid + params + pub[1:])


def reference_verify(pub: bytes, message: bytes, der: bytes, uid: bytes = DEFAULT_ID) -> bool:
    r, s = decode_dss_signature(der)
    e = int.from_bytes(SUITE.hash(_z(uid, pub) + message), "big")
    t = (r + s) % N
    if not (0 < r < N and 0 < s < N) or t == 0:
        return False
    q = (int.from_bytes(pub[1:33], "big"), int.from_bytes(pub[33:], "big"))
    x1y1 = _add(_mul(s, G), _mul(t, q))
    return x1y1 is not None and (e + x1y1[0]) % N == r


def _public_from_scalar(d: int) -> bytes:
    pt = _mul(d, G)
    assert pt is not None
    return b"\x04" + pt[0].to_bytes(32, "big") + pt[1].to_bytes(32, "big")


# --- registry / metadata ---------------------------------------------------------------------


def test_registry_returns_gm_suite() -> None:
    suite = get_suite("gm")
    assert isinstance(suite, GmSuite)
    assert (suite.name, suite.hash_name, suite.signature_name) == ("gm", "sm3", "sm2")


def test_missing_tongsuopy_raises_suite_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "tongsuopy" or m.startswith("tongsuopy.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "confide.crypto._gm")
    with pytest.raises(SuiteUnavailable, match=r"pip install 'confide\[gm\]'"):
        importlib.import_module("confide.crypto._gm")


# --- SM3 / SM4 known answers -----------------------------------------------------------------


@pytest.mark.parametrize("vec", KAT["sm3"], ids=lambda v: v["message"][:12])
def test_sm3_kat(vec: dict[str, str]) -> None:
    digest = SUITE.hash(bytes.fromhex(vec["message"]))
    assert digest.hex() == vec["digest"]
    assert len(digest) == 32


def test_sm4_block_kat() -> None:
    (vec,) = KAT["sm4_block"]
    enc = Cipher(algorithms.SM4(bytes.fromhex(vec["key"])), modes.ECB()).encryptor()
    out = enc.update(bytes.fromhex(vec["plaintext"])) + enc.finalize()
    assert out.hex() == vec["ciphertext"]


def test_sm4_gcm_rfc8998_kat_and_tamper() -> None:
    (vec,) = KAT["sm4_gcm"]
    key, nonce, aad = (bytes.fromhex(vec[f]) for f in ("key", "nonce", "aad"))
    plaintext = bytes.fromhex(vec["plaintext"])
    sealed = sm4_gcm_encrypt(key, nonce, plaintext, aad)
    assert sealed.hex() == vec["ciphertext"] + vec["tag"]
    assert sm4_gcm_decrypt(key, nonce, sealed, aad) == plaintext
    for index in (0, len(plaintext) - 1, len(sealed) - 1):
        damaged = bytearray(sealed)
        damaged[index] ^= 1
        with pytest.raises(SM4DecryptionError):
            sm4_gcm_decrypt(key, nonce, bytes(damaged), aad)
    with pytest.raises(SM4DecryptionError):
        sm4_gcm_decrypt(key, nonce, sealed, aad + b"x")
    with pytest.raises(SM4DecryptionError):
        sm4_gcm_decrypt(key, nonce, sealed[:15], aad)


def test_sm4_gcm_rejects_bad_lengths() -> None:
    with pytest.raises(ValueError, match="key"):
        sm4_gcm_encrypt(bytes(32), bytes(12), b"x")
    with pytest.raises(ValueError, match="nonce"):
        sm4_gcm_encrypt(bytes(16), bytes(16), b"x")


# --- SM2 known answers -----------------------------------------------------------------------


@pytest.mark.parametrize("vec", KAT["sm2_signatures"], ids=lambda v: v["name"])
def test_sm2_vector_verifies(vec: dict[str, str]) -> None:
    pub, msg = bytes.fromhex(vec["public_key"]), bytes.fromhex(vec["message"])
    sig = bytes.fromhex(vec["signature_der"])
    assert bytes.fromhex(vec["id"]) == DEFAULT_ID
    # the key pair is consistent, per both tongsuopy and the reference arithmetic
    d = int(vec["private_key"], 16)
    derived = ts_ec.derive_private_key(d, ts_ec.SM2()).public_key()
    raw = derived.public_bytes(
        ts_serialization.Encoding.X962, ts_serialization.PublicFormat.UncompressedPoint
    )
    assert raw == pub == _public_from_scalar(d)
    SUITE.load_public(pub).verify(sig, msg)
    assert reference_verify(pub, msg, sig)
    with pytest.raises(InvalidSignature):
        SUITE.load_public(pub).verify(sig, msg + b"\x00")


def test_sm2_annex_a_intermediates() -> None:
    vec = next(v for v in KAT["sm2_signatures"] if v["name"] == "gbt32918-annex-a")
    pub, msg = bytes.fromhex(vec["public_key"]), bytes.fromhex(vec["message"])
    z_a = _z(DEFAULT_ID, pub)
    assert z_a.hex() == vec["z_a"]
    assert SUITE.hash(z_a + msg).hex() == vec["e"]
    r, s = decode_dss_signature(bytes.fromhex(vec["signature_der"]))
    assert (f"{r:064x}", f"{s:064x}") == (vec["r"], vec["s"])


def test_suite_signatures_are_real_sm2_with_default_id() -> None:
    for i in range(4):
        key = SUITE.generate()
        pub, msg = key.public_key().raw(), bytes(range(i * 37 % 256)) * (i + 1)
        sig = key.sign(msg)
        assert reference_verify(pub, msg, sig)
        assert not reference_verify(pub, msg, sig, uid=b"")
        assert not reference_verify(pub, msg, sig, uid=b"ALICE123@YAHOO.COM")


# --- SM2 properties --------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=300))
def test_sign_verify_roundtrip(message: bytes) -> None:
    key = SUITE.generate()
    sig = key.sign(message)
    key.public_key().verify(sig, message)
    SUITE.load_public(key.public_key().raw()).verify(sig, message)


def test_flipped_message_bit_fails() -> None:
    key = SUITE.generate()
    msg = b"grant: org-a may read dataset 7"
    sig = key.sign(msg)
    for bit in range(len(msg) * 8):
        flipped = bytearray(msg)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(InvalidSignature):
            key.public_key().verify(sig, bytes(flipped))


def test_every_flipped_signature_bit_fails() -> None:
    key = SUITE.generate()
    msg = b"release 42"
    sig = key.sign(msg)
    for bit in range(len(sig) * 8):
        flipped = bytearray(sig)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(InvalidSignature) as info:
            key.public_key().verify(bytes(flipped), msg)
        assert str(info.value) == "signature verification failed"  # opaque, no detail


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x30\x00", b"\x01\x02\x03", bytes(72)],
    ids=["empty", "empty-sequence", "garbage", "zeros"],
)
def test_garbage_signature_fails(bad: bytes) -> None:
    with pytest.raises(InvalidSignature):
        SUITE.generate().public_key().verify(bad, b"m")


def test_non_canonical_signature_encodings_fail() -> None:
    key = SUITE.generate()
    sig = key.sign(b"m")
    r, s = decode_dss_signature(sig)
    assert encode_dss_signature(r, s) == sig  # we emit canonical DER

    def integer(v: int, pad: bytes = b"") -> bytes:
        body = pad + v.to_bytes((v.bit_length() + 8) // 8, "big")
        return b"\x02" + bytes([len(body)]) + body

    body = integer(r, pad=b"\x00") + integer(s)  # r with a redundant leading zero byte
    non_minimal = b"\x30" + bytes([len(body)]) + body
    assert b"\x30" + bytes([len(body) - 1]) + integer(r) + integer(s) == sig
    for bad in (sig + b"\x00", non_minimal, encode_dss_signature(r + N, s)):
        with pytest.raises(InvalidSignature):
            key.public_key().verify(bad, b"m")


def test_signature_from_other_key_fails() -> None:
    a, b = SUITE.generate(), SUITE.generate()
    with pytest.raises(InvalidSignature):
        b.public_key().verify(a.sign(b"m"), b"m")


def test_signatures_are_randomized() -> None:
    key = SUITE.generate()
    assert key.sign(b"m") != key.sign(b"m")


# --- keys ------------------------------------------------------------------------------------


def test_public_key_raw_and_key_id() -> None:
    pub = SUITE.generate().public_key()
    raw = pub.raw()
    assert len(raw) == 65 and raw[0] == 0x04
    assert SUITE.load_public(raw).raw() == raw
    assert pub.key_id() == SUITE.hash(raw).hex()
    assert len(pub.key_id()) == 64


def test_pem_roundtrip_keeps_key_id() -> None:
    key = SUITE.generate()
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    again = SUITE.load_private_pem(pem)
    assert again.public_key().key_id() == key.public_key().key_id()
    assert again.to_pem() == pem
    key.public_key().verify(again.sign(b"m"), b"m")


def _pyca_pem(key: Any) -> bytes:
    pem: bytes = key.private_bytes(
        pyca_serialization.Encoding.PEM,
        pyca_serialization.PrivateFormat.PKCS8,
        pyca_serialization.NoEncryption(),
    )
    return pem


@pytest.mark.parametrize(
    "pem",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not a pem", id="garbage"),
        pytest.param(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", id="junk"),
        pytest.param(_pyca_pem(pyca_ec.generate_private_key(pyca_ec.SECP256R1())), id="p256"),
        pytest.param(get_suite("default").generate().to_pem(), id="ed25519"),
    ],
)
def test_load_private_pem_rejects_non_sm2(pem: bytes) -> None:
    with pytest.raises(InvalidKey):
        SUITE.load_private_pem(pem)


def test_load_private_pem_rejects_mismatched_public_point() -> None:
    a, b = SUITE.generate(), SUITE.generate()
    body = b"".join(a.to_pem().splitlines()[1:-1])
    der = base64.b64decode(body)
    raw_a, raw_b = a.public_key().raw(), b.public_key().raw()
    assert der.count(raw_a) == 1
    forged = base64.encodebytes(der.replace(raw_a, raw_b))
    pem = b"-----BEGIN PRIVATE KEY-----\n" + forged + b"-----END PRIVATE KEY-----\n"
    with pytest.raises(InvalidKey, match="does not match"):
        SUITE.load_private_pem(pem)


def test_load_private_pem_rejects_degenerate_scalar() -> None:
    key = ts_ec.derive_private_key(N - 1, ts_ec.SM2())  # 1 + d == n: SM2 cannot sign
    pem = key.private_bytes(
        ts_serialization.Encoding.PEM,
        ts_serialization.PrivateFormat.PKCS8,
        ts_serialization.NoEncryption(),
    )
    with pytest.raises(InvalidKey, match="range"):
        SUITE.load_private_pem(pem)


def _bad_publics() -> list[Any]:
    raw = SUITE.generate().public_key().raw()
    x, y = raw[1:33], raw[33:]
    compressed = bytes([2 + (y[-1] & 1)]) + x
    off_curve = b"\x04" + x + (int.from_bytes(y, "big") ^ 1).to_bytes(32, "big")
    x_is_p = b"\x04" + P.to_bytes(32, "big") + y
    return [
        pytest.param(b"", id="empty"),
        pytest.param(x + y, id="64-byte-xy"),
        pytest.param(compressed, id="compressed"),
        pytest.param(b"\x06" + x + y, id="hybrid"),
        pytest.param(raw + b"\x00", id="66-bytes"),
        pytest.param(off_curve, id="off-curve"),
        pytest.param(x_is_p, id="x-equals-p"),
        pytest.param(b"\x04" + bytes(64), id="zeros"),
        pytest.param(b"\x04" + b"\xff" * 64, id="ones"),
    ]


@pytest.mark.parametrize("raw", _bad_publics())
def test_load_public_rejects(raw: bytes) -> None:
    with pytest.raises(InvalidKey):
        SUITE.load_public(raw)
