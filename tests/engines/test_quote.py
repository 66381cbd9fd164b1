"""Tests of simulated-SGX quotes: DCAP v3 byte layout, the simulated key chain, measurements, verification.

The known answer lives in ``vectors/quote_kat.json`` (fixed keys; RFC 6979 signatures make the bytes
exact). Offsets are asserted with the literal numbers of issue 4. Every rejected quote must surface as
exactly :class:`QuoteRejected` with the opaque message, and the test asserts its logged ``reason``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.engines.tee import quote as layout
from confide.engines.tee.attestation import (
    AttestationKey,
    QuoteRejected,
    SimulatedRoot,
    make_quote,
    mrenclave,
    mrsigner,
    report_data,
    verify_quote,
)

KAT_FILE = Path(__file__).parent / "vectors" / "quote_kat.json"
KAT: dict[str, Any] = json.loads(KAT_FILE.read_text())["vectors"][0]
QUOTE = bytes.fromhex(KAT["quote"])
ROOT = SimulatedRoot.from_private_bytes(bytes.fromhex(KAT["root_private_key"]))
ATT_SK, QE_SVN = bytes.fromhex(KAT["attestation_private_key"]), KAT["qe_svn"]
KEY = AttestationKey.create(ROOT, private_key=ATT_SK, qe_svn=QE_SVN, pce_svn=KAT["pce_svn"])
OTHER_ROOT = SimulatedRoot.from_private_bytes(hashlib.sha256(b"test: another root").digest())
OTHER_SK = hashlib.sha256(b"test: another attestation key").digest()
RUNTIME = bytes.fromhex(KAT["runtime_digest"])
MRENCLAVE, MRSIGNER = bytes.fromhex(KAT["mrenclave"]), bytes.fromhex(KAT["mrsigner"])
CHANNEL, RESULT = bytes.fromhex(KAT["channel_pub"]), bytes.fromhex(KAT["result_key_pub"])
BLOCK, REPORT_DATA = KAT["block_hash"], bytes.fromhex(KAT["report_data"])
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _quote(key: AttestationKey = KEY, **fields: Any) -> bytes:
    claims = {"mrenclave": MRENCLAVE, "mrsigner": MRSIGNER, "isv_prod_id": 7, "isv_svn": 3}
    return make_quote(key, **{**claims, "report_data": REPORT_DATA, **fields})


def _verify(quote: bytes, **policy: Any) -> Any:
    base = {"root_public_key": ROOT.public_key, "allowed_mrenclaves": {MRENCLAVE}, "min_isv_svn": 3}
    more = {
        "allowed_mrsigners": {MRSIGNER},
        "expected_report_data": REPORT_DATA,
        "fresh_block_hashes": {BLOCK},
    }
    return verify_quote(quote, **{**base, **more, **policy})


def _rejected(reason: str, quote: bytes, **policy: Any) -> QuoteRejected:
    with pytest.raises(QuoteRejected) as info:
        _verify(quote, **policy)
    assert str(info.value) == "quote rejected"
    assert info.value.reason == reason, info.value.detail
    assert info.value.detail.startswith(f"{reason}: ")
    return info.value


def _resigned(quote: bytes, signer: AttestationKey = KEY, **changes: Any) -> bytes:
    """Re-encode ``quote`` with ``changes`` to the parsed fields and a fresh signature by ``signer``."""
    parsed = dataclasses.replace(layout.parse_quote(quote), **changes)
    return dataclasses.replace(parsed, signature=signer.sign(parsed.signed_bytes())).to_bytes()


def _framed_sha256(*fields: bytes) -> bytes:
    return hashlib.sha256(b"".join(struct.pack(">Q", len(f)) + f for f in fields)).digest()


def _p256_verify(public_xy: bytes, signature: bytes, message: bytes) -> None:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + public_xy)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))


def test_kat_quote_bytes_are_exact() -> None:
    assert ROOT.public_key_hex == KAT["root_public_key"]
    assert KEY.public_key.hex() == KAT["attestation_public_key"]
    assert KEY.certification.qe_report.hex() == KAT["certification_statement"]
    assert mrenclave(RUNTIME, KAT["locked_deps"], KAT["task_code"]) == MRENCLAVE
    assert mrsigner(bytes.fromhex(KAT["signing_public_key"])) == MRSIGNER
    assert report_data(CHANNEL, RESULT, KAT["task_id"], BLOCK) == REPORT_DATA
    assert _quote(isv_prod_id=KAT["isv_prod_id"], isv_svn=KAT["isv_svn"]) == QUOTE


def test_kat_verifies() -> None:
    verified = _verify(QUOTE)
    assert (verified.mrenclave, verified.mrsigner) == (MRENCLAVE, MRSIGNER)
    assert (verified.isv_prod_id, verified.isv_svn, verified.report_data) == (7, 3, REPORT_DATA)
    assert verified.debug is True
    assert verified.tee_type == "simulated"
    assert verified.quote_digest == hashlib.sha256(QUOTE).digest() == bytes.fromhex(KAT["quote_digest"])


def test_kat_measurements_follow_the_documented_bytes() -> None:
    tag = b"confide/tee/simulated/"
    deps, code = KAT["locked_deps"].encode(), KAT["task_code"].encode()
    assert _framed_sha256(tag + b"mrenclave/v1", RUNTIME, deps, code) == MRENCLAVE
    assert _framed_sha256(tag + b"mrsigner/v1", bytes.fromhex(KAT["signing_public_key"])) == MRSIGNER
    block = bytes.fromhex(BLOCK)
    fields = (tag + b"report-data/v1", CHANNEL, RESULT, KAT["task_id"].encode(), block)
    assert _framed_sha256(*fields) + block == REPORT_DATA


def test_kat_signatures_and_certification_follow_the_documented_bytes() -> None:
    att_pub, auth = QUOTE[500:564], b"CONFIDE-SIM-ATTESTATION-KEY-V1\x00\x00"
    _p256_verify(att_pub, QUOTE[436:500], QUOTE[:432])
    statement = QUOTE[564:948]
    _p256_verify(bytes.fromhex(KAT["root_public_key"])[1:], QUOTE[948:1012], statement)
    assert statement[64:96] == hashlib.sha256(b"confide/tee/simulated/qe-mrenclave/v1").digest()
    assert statement[128:160] == hashlib.sha256(b"confide/tee/simulated/qe-mrsigner/v1").digest()
    assert struct.unpack_from("<HH", statement, 256) == (1, QE_SVN)
    assert statement[320:] == hashlib.sha256(att_pub + auth).digest() + bytes(32)
    assert QUOTE[1012:1046] == struct.pack("<H", 32) + auth


def test_offsets_are_those_of_the_issue() -> None:
    assert QUOTE[112:144] == MRENCLAVE
    assert QUOTE[176:208] == MRSIGNER
    assert struct.unpack_from("<H", QUOTE, 304) == (7,)
    assert struct.unpack_from("<H", QUOTE, 306) == (3,)
    assert QUOTE[368:432] == REPORT_DATA
    assert (layout.HEADER_LEN, layout.REPORT_BODY_LEN, layout.SIGNED_LEN) == (48, 384, 432)
    assert (layout.SIGNATURE_DATA_OFFSET, layout.QE_REPORT_OFFSET) == (436, 564)


def test_header_and_signature_section_fields() -> None:
    version, key_type, tee_type, qe_svn, pce_svn = struct.unpack_from("<HHIHH", QUOTE, 0)
    assert (version, key_type, tee_type, qe_svn, pce_svn) == (3, 2, 0, QE_SVN, KAT["pce_svn"])
    assert QUOTE[12:28] == b"CONFIDE-SIM-QE\x00\x00" != bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
    assert QUOTE[28:48] == bytes(20)
    assert struct.unpack_from("<Q", QUOTE, 96)[0] & 0x2  # ATTRIBUTES.FLAGS.DEBUG marks simulation
    assert struct.unpack_from("<I", QUOTE, 432) == (len(QUOTE) - 436,)
    assert QUOTE[500:564] == KEY.public_key
    assert struct.unpack_from("<HI", QUOTE, 1046) == (0xC0F1, 65)
    assert QUOTE[1052:] == ROOT.public_key and len(QUOTE) == 1117


def test_parse_then_encode_is_identity() -> None:
    parsed = layout.parse_quote(QUOTE)
    assert parsed.to_bytes() == QUOTE
    assert parsed.body.mrenclave == MRENCLAVE and parsed.attestation_key == KEY.public_key


@settings(max_examples=40, deadline=None)
@given(
    me=st.binary(min_size=32, max_size=32),
    ms=st.binary(min_size=32, max_size=32),
    prod=st.integers(0, 0xFFFF),
    svn=st.integers(0, 0xFFFF),
    rd=st.binary(min_size=64, max_size=64),
)
def test_roundtrip(me: bytes, ms: bytes, prod: int, svn: int, rd: bytes) -> None:
    quote = _quote(mrenclave=me, mrsigner=ms, isv_prod_id=prod, isv_svn=svn, report_data=rd)
    policy = {"allowed_mrenclaves": {me}, "allowed_mrsigners": {ms}, "min_isv_svn": svn}
    verified = _verify(quote, **policy, expected_report_data=rd, fresh_block_hashes={rd[32:].hex()})
    assert (verified.mrenclave, verified.mrsigner, verified.isv_prod_id, verified.isv_svn) == (
        me,
        ms,
        prod,
        svn,
    )
    assert layout.parse_quote(quote).to_bytes() == quote


def test_policy_pinning_only_the_signer_is_enough() -> None:
    assert _verify(QUOTE, allowed_mrenclaves=None).mrenclave == MRENCLAVE
    with pytest.raises(ValueError, match="pin MRENCLAVE or MRSIGNER"):
        _verify(QUOTE, allowed_mrenclaves=None, allowed_mrsigners=None)


def test_quote_signature_by_another_attestation_key() -> None:
    other = AttestationKey.create(ROOT, private_key=OTHER_SK)
    _rejected("quote_signature", _resigned(QUOTE, signer=other))


def test_uncertified_key_presenting_a_genuine_certification() -> None:
    rogue = AttestationKey.create(OTHER_ROOT, private_key=OTHER_SK, qe_svn=QE_SVN)
    _rejected("attestation_key_binding", _resigned(QUOTE, signer=rogue, attestation_key=rogue.public_key))


def test_attestation_key_certified_by_another_root() -> None:
    foreign = AttestationKey.create(OTHER_ROOT, private_key=OTHER_SK)
    quote = _quote(foreign)
    _rejected("unknown_root", quote)
    _rejected("certification", _resigned(quote, signer=foreign, cert_data=ROOT.public_key))


def test_high_s_signature_is_rejected() -> None:
    s = int.from_bytes(QUOTE[468:500], "big")
    twin = QUOTE[:468] + (P256_N - s).to_bytes(32, "big") + QUOTE[500:]
    _p256_verify(KEY.public_key, twin[436:500], twin[:432])  # mathematically valid ...
    _rejected("quote_signature", twin)  # ... but only the low-s encoding is accepted


def test_changed_sql_is_a_new_measurement() -> None:
    changed = mrenclave(RUNTIME, KAT["locked_deps"], KAT["task_code"] + " HAVING count(*) >= 10")
    assert changed != MRENCLAVE
    rejection = _rejected("mrenclave", _quote(mrenclave=changed))
    assert changed.hex() in rejection.detail


def test_wrong_mrsigner() -> None:
    _rejected("mrsigner", _quote(mrsigner=mrsigner(b"someone else's build key")))


def test_isv_svn_below_minimum() -> None:
    _rejected("isv_svn", _quote(isv_svn=2))
    _rejected("isv_svn", QUOTE, min_isv_svn=4)


def test_report_data_mismatch_channel_key_swapped() -> None:
    swapped = report_data(bytes(32), RESULT, KAT["task_id"], BLOCK)
    _rejected("report_data", _quote(report_data=swapped))
    _rejected("report_data", QUOTE, expected_report_data=swapped)


def test_stale_block_hash() -> None:
    old = hashlib.sha256(b"block 3").hexdigest()
    stale = report_data(CHANNEL, RESULT, KAT["task_id"], old)
    _rejected("stale", _quote(report_data=stale), expected_report_data=stale)
    assert _verify(_quote(report_data=stale), expected_report_data=stale, fresh_block_hashes={old, BLOCK})


def test_not_a_simulated_quote() -> None:
    intel = dataclasses.replace(layout.parse_quote(QUOTE).header, qe_vendor_id=layout.INTEL_QE_VENDOR_ID)
    _rejected("not_simulated", _resigned(QUOTE, header=intel))
    production = dataclasses.replace(layout.parse_quote(QUOTE).body, attributes=bytes([5]) + bytes(15))
    _rejected("not_simulated", _resigned(QUOTE, body=production))


def test_every_single_flipped_byte_is_rejected() -> None:
    for position in range(len(QUOTE)):
        with pytest.raises(QuoteRejected):
            _verify(QUOTE[:position] + bytes([QUOTE[position] ^ 0x01]) + QUOTE[position + 1 :])


@given(position=st.integers(0, len(QUOTE) - 1), mask=st.integers(1, 255))
def test_flipped_byte_anywhere(position: int, mask: int) -> None:
    flipped = bytearray(QUOTE)
    flipped[position] ^= mask
    with pytest.raises(QuoteRejected) as info:
        _verify(bytes(flipped))
    assert str(info.value) == "quote rejected"


def test_truncated_quote() -> None:
    for length in range(len(QUOTE)):
        exc = _rejected("malformed", QUOTE[:length])
        assert "truncated" in exc.detail or "past the end" in exc.detail or "shorter" in exc.detail


@given(garbage=st.binary(min_size=1, max_size=64))
def test_trailing_garbage(garbage: bytes) -> None:
    assert "trailing bytes" in _rejected("malformed", QUOTE + garbage).detail
    relabelled = QUOTE[:432] + struct.pack("<I", len(QUOTE) - 436 + len(garbage)) + QUOTE[436:] + garbage
    assert "left over" in _rejected("malformed", relabelled).detail


def test_rejection_is_logged_with_its_detail(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="confide.tee.attestation")
    _rejected("isv_svn", QUOTE, min_isv_svn=9)
    assert "isv_svn: ISV_SVN 3 below the minimum 9" in caplog.text


def test_measurement_fields_are_framed() -> None:
    assert mrenclave(RUNTIME, "ab", "c") != mrenclave(RUNTIME, "a", "bc")
    assert report_data(CHANNEL, RESULT, "t1", BLOCK) != report_data(CHANNEL, RESULT, "t2", BLOCK)
    with pytest.raises(ValueError):
        mrenclave(b"not a digest", "", "")
    with pytest.raises(ValueError):
        report_data(CHANNEL[:31], RESULT, "t", BLOCK)
    with pytest.raises(ValueError):
        report_data(CHANNEL, RESULT, "t", BLOCK.upper())


def test_attestation_key_refuses_a_certification_for_another_key() -> None:
    with pytest.raises(ValueError, match="another attestation key"):
        AttestationKey(OTHER_SK, KEY.certification)
