"""Quote bytes in the Intel SGX DCAP v3 ECDSA layout (sharp: layout only, no trust decisions).

This module builds and parses bytes; it verifies nothing. ``attestation.py`` is the trust
boundary. The layout is Intel's field for field, so a parser written for real DCAP v3 quotes
reads a simulated quote's header, report body and signature section. Offsets were checked
against Intel's own definitions: ``sgx_quote_header_t``, ``sgx_quote3_t``,
``sgx_ql_ecdsa_sig_data_t``, ``sgx_ql_auth_data_t`` and ``sgx_ql_certification_data_t`` in
``QuoteGeneration/quote_wrapper/common/inc/sgx_quote_3.h`` (intel/SGXDataCenterAttestationPrimitives)
and ``sgx_report_body_t`` in ``common/inc/sgx_report.h`` (intel/linux-sgx); and by parsing a real
hardware quote (mobilecoinfoundation/sgx ``dcap/types/data/tests/hw_quote.dat``) with
``parse_quote(strict=False)``: its own ECDSA signature and QE-report binding verify on these slices.

Integers are little-endian; keys and signatures are big-endian (r||s, x||y), as in DCAP::

    offset size  field
       0     2   version = 3                      header (48 bytes)
       2     2   att_key_type = 2 (ECDSA-256-with-P-256)
       4     4   tee_type = 0 (SGX; v3 calls it att_key_data_0, reserved)
       8     2   qe_svn
      10     2   pce_svn
      12    16   qe_vendor_id = "CONFIDE-SIM-QE\\0\\0" (Intel's: 939a7233f79c4ca9940a0db3957f0607)
      28    20   user_data (zero)
      48    16   CPUSVN                           report body (384 bytes)
      64     4   MISCSELECT
      68    28   reserved (newer SDKs: 12 reserved + ISVEXTPRODID), zero
      96    16   ATTRIBUTES: flags u64 (INIT|DEBUG|MODE64BIT), xfrm u64
     112    32   MRENCLAVE
     144    32   reserved, zero
     176    32   MRSIGNER
     208    96   reserved (newer SDKs: 32 reserved + CONFIGID), zero
     304     2   ISV_PROD_ID
     306     2   ISV_SVN
     308    60   reserved (newer SDKs: CONFIGSVN + 42 reserved + ISVFAMILYID), zero
     368    64   REPORT_DATA
     432     4   signature_data_len = len(quote) - 436
     436    64   quote signature by the attestation key over bytes [0, 432)
     500    64   attestation public key
     564   384   QE report body (the certification statement, see _simkeys.py)
     948    64   QE report signature by the simulated root over bytes [564, 948)
    1012     2   auth_data size (32), then auth_data (1014..1046)
    1046     2   certification data type = 0xC0F1 (simulated root; Intel uses 1..7)
    1048     4   certification data size (65), then the root public key, SEC1 uncompressed
    1117         end of a simulated quote
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "ATTRIBUTES_DEBUG",
    "CERT_TYPE_SIMULATED_ROOT",
    "HEADER_LEN",
    "INTEL_QE_VENDOR_ID",
    "QE_REPORT_OFFSET",
    "REPORT_BODY_LEN",
    "SIGNATURE_DATA_OFFSET",
    "SIGNED_LEN",
    "SIMULATED_ATTRIBUTES",
    "SIM_QE_VENDOR_ID",
    "Quote",
    "QuoteFormatError",
    "QuoteHeader",
    "ReportBody",
    "parse_quote",
    "parse_report_body",
]

QUOTE_VERSION = 3
ATT_KEY_TYPE_ECDSA_P256 = 2
TEE_TYPE_SGX = 0
SIM_QE_VENDOR_ID = b"CONFIDE-SIM-QE\x00\x00"
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
# Outside Intel's sgx_ql_cert_key_type_t values (1..7), so no DCAP verifier mistakes it for a PCK chain.
CERT_TYPE_SIMULATED_ROOT = 0xC0F1

# SGX ATTRIBUTES.FLAGS bits (Intel SDM vol. 3D, SECS): INIT, DEBUG, MODE64BIT. DEBUG marks simulation.
ATTRIBUTES_INIT, ATTRIBUTES_DEBUG, ATTRIBUTES_MODE64BIT = 0x1, 0x2, 0x4
SIMULATED_ATTRIBUTES = struct.pack("<QQ", ATTRIBUTES_INIT | ATTRIBUTES_DEBUG | ATTRIBUTES_MODE64BIT, 0x3)

_HEADER = struct.Struct("<HHIHH16s20s")
_BODY = struct.Struct("<16sI28s16s32s32s32s96sHH60s64s")
HEADER_LEN = _HEADER.size  # 48
REPORT_BODY_LEN = _BODY.size  # 384
SIGNED_LEN = HEADER_LEN + REPORT_BODY_LEN  # 432: what the attestation key signs
SIGNATURE_DATA_OFFSET = SIGNED_LEN + 4  # 436
_SIG, _KEY = 64, 64
QE_REPORT_OFFSET = SIGNATURE_DATA_OFFSET + _SIG + _KEY  # 564
_FIXED_SIG_DATA = _SIG + _KEY + REPORT_BODY_LEN + _SIG  # 576


class QuoteFormatError(ValueError):
    """The bytes are not a well-formed quote, or a field is out of range (names the cause)."""


def _need(value: bytes, size: int, name: str) -> None:
    if len(value) != size:
        raise QuoteFormatError(f"{name} must be {size} bytes, got {len(value)}")


def _u16(value: int, name: str) -> None:
    if not 0 <= value <= 0xFFFF:
        raise QuoteFormatError(f"{name} must fit in u16, got {value}")


@dataclass(frozen=True, slots=True)
class QuoteHeader:
    """The 48-byte quote header (``sgx_quote_header_t``)."""

    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes = SIM_QE_VENDOR_ID
    user_data: bytes = bytes(20)
    version: int = QUOTE_VERSION
    att_key_type: int = ATT_KEY_TYPE_ECDSA_P256
    tee_type: int = TEE_TYPE_SGX

    def __post_init__(self) -> None:
        _u16(self.qe_svn, "qe_svn")
        _u16(self.pce_svn, "pce_svn")
        _need(self.qe_vendor_id, 16, "qe_vendor_id")
        _need(self.user_data, 20, "user_data")

    def to_bytes(self) -> bytes:
        return _HEADER.pack(
            self.version,
            self.att_key_type,
            self.tee_type,
            self.qe_svn,
            self.pce_svn,
            self.qe_vendor_id,
            self.user_data,
        )


@dataclass(frozen=True, slots=True)
class ReportBody:
    """The 384-byte SGX report body (``sgx_report_body_t``); reserved regions are written as zero."""

    mrenclave: bytes
    mrsigner: bytes
    isv_prod_id: int
    isv_svn: int
    report_data: bytes
    attributes: bytes = SIMULATED_ATTRIBUTES
    cpu_svn: bytes = bytes(16)
    misc_select: int = 0

    def __post_init__(self) -> None:
        _need(self.mrenclave, 32, "MRENCLAVE")
        _need(self.mrsigner, 32, "MRSIGNER")
        _need(self.report_data, 64, "REPORT_DATA")
        _need(self.attributes, 16, "ATTRIBUTES")
        _need(self.cpu_svn, 16, "CPUSVN")
        _u16(self.isv_prod_id, "ISV_PROD_ID")
        _u16(self.isv_svn, "ISV_SVN")
        if not 0 <= self.misc_select <= 0xFFFFFFFF:
            raise QuoteFormatError("MISCSELECT must fit in u32")

    @property
    def debug(self) -> bool:
        """True if ATTRIBUTES.FLAGS has the DEBUG bit (always set on a simulated quote)."""
        return bool(int.from_bytes(self.attributes[:8], "little") & ATTRIBUTES_DEBUG)

    def to_bytes(self) -> bytes:
        z28, z32, z96, z60 = bytes(28), bytes(32), bytes(96), bytes(60)
        return _BODY.pack(
            self.cpu_svn,
            self.misc_select,
            z28,
            self.attributes,
            self.mrenclave,
            z32,
            self.mrsigner,
            z96,
            self.isv_prod_id,
            self.isv_svn,
            z60,
            self.report_data,
        )


def parse_report_body(data: bytes, *, strict: bool = True) -> ReportBody:
    """Parse 384 bytes; ``strict`` rejects non-zero reserved regions (simulated quotes keep them zero)."""
    _need(data, REPORT_BODY_LEN, "report body")
    cpu, misc, r1, attrs, mre, r2, mrs, r3, prod, svn, r4, rdata = _BODY.unpack(data)
    if strict and any(r1 + r2 + r3 + r4):
        raise QuoteFormatError("reserved bytes of the report body are not zero")
    return ReportBody(mre, mrs, prod, svn, rdata, attributes=attrs, cpu_svn=cpu, misc_select=misc)


@dataclass(frozen=True, slots=True)
class Quote:
    """A parsed quote: header, ISV report body and the ECDSA signature data (``sgx_ql_ecdsa_sig_data_t``)."""

    header: QuoteHeader
    body: ReportBody
    signature: bytes
    attestation_key: bytes
    qe_report: ReportBody
    qe_report_signature: bytes
    auth_data: bytes
    cert_type: int
    cert_data: bytes

    def __post_init__(self) -> None:
        _need(self.signature, _SIG, "quote signature")
        _need(self.attestation_key, _KEY, "attestation public key")
        _need(self.qe_report_signature, _SIG, "QE report signature")
        _u16(len(self.auth_data), "auth_data size")
        _u16(self.cert_type, "certification data type")

    def signed_bytes(self) -> bytes:
        """Header and body: the bytes [0, 432) the attestation key signs."""
        return self.header.to_bytes() + self.body.to_bytes()

    def to_bytes(self) -> bytes:
        sig_data = b"".join(
            (
                self.signature,
                self.attestation_key,
                self.qe_report.to_bytes(),
                self.qe_report_signature,
                struct.pack("<H", len(self.auth_data)),
                self.auth_data,
                struct.pack("<HI", self.cert_type, len(self.cert_data)),
                self.cert_data,
            )
        )
        return self.signed_bytes() + struct.pack("<I", len(sig_data)) + sig_data


def _parse_header(data: bytes) -> QuoteHeader:
    version, key_type, tee_type, qe_svn, pce_svn, vendor, user = _HEADER.unpack_from(data, 0)
    if version != QUOTE_VERSION:
        raise QuoteFormatError(f"quote version {version}, expected {QUOTE_VERSION}")
    if key_type != ATT_KEY_TYPE_ECDSA_P256:
        raise QuoteFormatError(f"attestation key type {key_type}, expected ECDSA P-256 (2)")
    if tee_type != TEE_TYPE_SGX:
        raise QuoteFormatError(f"tee type {tee_type:#x}, expected SGX (0)")
    return QuoteHeader(qe_svn, pce_svn, qe_vendor_id=vendor, user_data=user)


def _take(data: bytes, pos: int, size: int, name: str) -> bytes:
    if pos + size > len(data):
        raise QuoteFormatError(f"{name} runs past the end of the signature data")
    return data[pos : pos + size]


def _parse_signature_data(header: QuoteHeader, body: ReportBody, sd: bytes, strict: bool) -> Quote:
    if len(sd) < _FIXED_SIG_DATA:
        raise QuoteFormatError("signature data shorter than its fixed part")
    (auth_size,) = struct.unpack("<H", _take(sd, _FIXED_SIG_DATA, 2, "auth_data size"))
    pos = _FIXED_SIG_DATA + 2
    auth = _take(sd, pos, auth_size, "auth_data")
    pos += auth_size
    cert_type, cert_size = struct.unpack("<HI", _take(sd, pos, 6, "certification data header"))
    pos += 6
    cert = _take(sd, pos, cert_size, "certification data")
    if pos + cert_size != len(sd):
        raise QuoteFormatError("bytes left over after the certification data")
    return Quote(
        header=header,
        body=body,
        signature=sd[0:64],
        attestation_key=sd[64:128],
        qe_report=parse_report_body(sd[128:512], strict=strict),
        qe_report_signature=sd[512:576],
        auth_data=auth,
        cert_type=cert_type,
        cert_data=cert,
    )


def parse_quote(data: bytes, *, strict: bool = True) -> Quote:
    """Parse a DCAP v3 ECDSA-P256 quote; raise :class:`QuoteFormatError` on any layout fault.

    Checks the version, key type and every length, including that ``signature_data_len`` covers the
    rest of the input exactly (no truncation, no trailing bytes). ``strict=False`` accepts non-zero
    reserved regions, as found in real hardware quotes. Verifies no signature.
    """
    if len(data) < SIGNATURE_DATA_OFFSET:
        raise QuoteFormatError(f"quote truncated: {len(data)} bytes, header and body need {SIGNED_LEN + 4}")
    header = _parse_header(data)
    body = parse_report_body(data[HEADER_LEN:SIGNED_LEN], strict=strict)
    (sig_len,) = struct.unpack_from("<I", data, SIGNED_LEN)
    actual = len(data) - SIGNATURE_DATA_OFFSET
    if sig_len > actual:
        raise QuoteFormatError(f"quote truncated: signature data is {actual} bytes, header says {sig_len}")
    if sig_len < actual:
        raise QuoteFormatError(f"{actual - sig_len} trailing bytes after the signature data")
    return _parse_signature_data(header, body, data[SIGNATURE_DATA_OFFSET:], strict)
