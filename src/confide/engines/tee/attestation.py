"""Simulated remote attestation: measurements, quotes and their verification (the ``simulated`` backend).

What the ``simulated`` backend does NOT protect against (every record it produces says
``tee_type: simulated``):

* The enclave is an ordinary OS process. Its host (root, or the user running it, on that machine) can
  read and change its memory: decrypted inputs, channel and sealing keys, results.
* Whoever holds the simulated root private key, or an attestation key the root certified, can forge a
  quote for any MRENCLAVE, MRSIGNER and REPORT_DATA. No hardware stands behind these keys.
* There is no TCB recovery: CPUSVN and the QE/PCE SVNs are informational; there is no CRL and no TCB info.

What it keeps is the protocol: the DCAP v3 quote layout (``quote.py``), the key chain root ->
attestation key -> quote (``_simkeys.py``), the measurement policy, the REPORT_DATA binding and
freshness. Real backends (SGX via Gramine, whose DCAP quotes are checked against Intel's PCK chain and
collateral; TDX; SEV-SNP) plug in behind the same verify interface: quote bytes and a policy in, a
:class:`VerifiedQuote` naming its ``tee_type`` or one opaque :class:`QuoteRejected` out.

Measurements are SHA-256 over fields framed as 8-byte big-endian length || bytes, the first field an
ASCII domain tag, so no two different inputs share an encoding:

* ``mrenclave`` = H(b"confide/tee/simulated/mrenclave/v1", runtime digest (32 bytes), locked
  dependencies UTF-8, task code UTF-8). The task code is the SQL text or function source, byte for byte.
* ``mrsigner`` = H(b"confide/tee/simulated/mrsigner/v1", signing public key).
* ``report_data`` = H(b"confide/tee/simulated/report-data/v1", X25519 channel key (32), Ed25519 result
  key (32), task id UTF-8, block hash (32)) || block hash (32). The second half repeats the block hash
  so a verifier can read it back for the freshness check.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from ._simkeys import (
    AUTH_DATA,
    AttestationKey,
    Certification,
    SimulatedRoot,
    load_public,
    qe_report,
    verifies,
)
from .quote import (
    CERT_TYPE_SIMULATED_ROOT,
    QE_REPORT_OFFSET,
    REPORT_BODY_LEN,
    SIGNED_LEN,
    SIM_QE_VENDOR_ID,
    Quote,
    QuoteFormatError,
    QuoteHeader,
    ReportBody,
    parse_quote,
    parse_report_body,
)

__all__ = [
    "TEE_TYPE",
    "AttestationKey",
    "Certification",
    "QuoteRejected",
    "SimulatedRoot",
    "VerifiedQuote",
    "make_quote",
    "mrenclave",
    "mrsigner",
    "report_data",
    "verify_quote",
]

TEE_TYPE = "simulated"
_TAG = b"confide/tee/simulated/"
_log = logging.getLogger("confide.tee.attestation")


class QuoteRejected(Exception):
    """A quote failed verification. ``str()`` is deliberately uninformative.

    ``reason`` (a stable code) and ``detail`` (``"<reason>: <sentence>"``) are for logs only; never
    send them back to whoever presented the quote.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__("quote rejected")
        self.reason = reason
        self.detail = f"{reason}: {message}"


def _framed(*fields: bytes) -> bytes:
    return hashlib.sha256(b"".join(len(f).to_bytes(8, "big") + f for f in fields)).digest()


def _exact(value: bytes, size: int, name: str) -> None:
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(value)}")


def mrenclave(runtime_digest: bytes, locked_deps: str, task_code: str) -> bytes:
    """MRENCLAVE of the runtime plus the task's code; changing any byte of the SQL changes it."""
    _exact(runtime_digest, 32, "runtime_digest")
    return _framed(_TAG + b"mrenclave/v1", runtime_digest, locked_deps.encode(), task_code.encode())


def mrsigner(signing_public_key: bytes) -> bytes:
    """MRSIGNER: the digest of the public key that signed the runtime build."""
    if not signing_public_key:
        raise ValueError("signing_public_key is empty")
    return _framed(_TAG + b"mrsigner/v1", signing_public_key)


def _block_hash_bytes(block_hash: str) -> bytes:
    raw = bytes.fromhex(block_hash)
    if len(raw) != 32 or raw.hex() != block_hash:
        raise ValueError("block_hash must be 64 lower-case hex digits")
    return raw


def report_data(channel_pub: bytes, result_key_pub: bytes, task_id: str, block_hash: str) -> bytes:
    """REPORT_DATA (64 bytes) binding the channel key, the result key, the task and a recent block."""
    _exact(channel_pub, 32, "channel_pub")
    _exact(result_key_pub, 32, "result_key_pub")
    block = _block_hash_bytes(block_hash)
    return _framed(_TAG + b"report-data/v1", channel_pub, result_key_pub, task_id.encode(), block) + block


def make_quote(
    key: AttestationKey,
    *,
    mrenclave: bytes,
    mrsigner: bytes,
    isv_prod_id: int,
    isv_svn: int,
    report_data: bytes,
    cpu_svn: bytes = bytes(16),
) -> bytes:
    """Build and sign a simulated quote (simulated QE vendor id, DEBUG attribute set)."""
    header = QuoteHeader(qe_svn=key.qe_svn, pce_svn=key.pce_svn)
    body = ReportBody(mrenclave, mrsigner, isv_prod_id, isv_svn, report_data, cpu_svn=cpu_svn)
    cert = key.certification
    return Quote(
        header=header,
        body=body,
        signature=key.sign(header.to_bytes() + body.to_bytes()),
        attestation_key=key.public_key,
        qe_report=parse_report_body(cert.qe_report),
        qe_report_signature=cert.signature,
        auth_data=AUTH_DATA,
        cert_type=CERT_TYPE_SIMULATED_ROOT,
        cert_data=cert.root_public_key,
    ).to_bytes()


@dataclass(frozen=True, slots=True)
class VerifiedQuote:
    """What a verified quote vouches for; ``quote_digest`` is SHA-256 of the exact quote bytes."""

    mrenclave: bytes
    mrsigner: bytes
    isv_prod_id: int
    isv_svn: int
    report_data: bytes
    debug: bool
    quote_digest: bytes
    tee_type: str = TEE_TYPE


def _verified(raw: bytes, body: ReportBody) -> VerifiedQuote:
    return VerifiedQuote(
        mrenclave=body.mrenclave,
        mrsigner=body.mrsigner,
        isv_prod_id=body.isv_prod_id,
        isv_svn=body.isv_svn,
        report_data=body.report_data,
        debug=body.debug,
        quote_digest=hashlib.sha256(raw).digest(),
    )


def _parse(raw: bytes) -> Quote:
    try:
        quote = parse_quote(raw)
    except QuoteFormatError as exc:
        raise QuoteRejected("malformed", str(exc)) from None
    if quote.header.qe_vendor_id != SIM_QE_VENDOR_ID:
        raise QuoteRejected("not_simulated", f"QE vendor id {quote.header.qe_vendor_id.hex()}")
    if not quote.body.debug:
        raise QuoteRejected("not_simulated", "DEBUG attribute clear")
    return quote


def _check_chain(raw: bytes, quote: Quote, root_public_key: bytes) -> None:
    if quote.cert_type != CERT_TYPE_SIMULATED_ROOT:
        raise QuoteRejected("certification", f"certification data type {quote.cert_type:#x}")
    if not hmac.compare_digest(quote.cert_data, root_public_key):
        raise QuoteRejected("unknown_root", "attestation key certified by a root not in genesis")
    try:
        root, att_key = load_public(root_public_key), load_public(b"\x04" + quote.attestation_key)
    except ValueError as exc:
        raise QuoteRejected("malformed", f"bad public key: {exc}") from None
    statement = raw[QE_REPORT_OFFSET : QE_REPORT_OFFSET + REPORT_BODY_LEN]
    if not verifies(root, quote.qe_report_signature, statement):
        raise QuoteRejected("certification", "root signature over the QE report does not verify")
    expected = qe_report(quote.attestation_key, quote.header.qe_svn).to_bytes()
    if quote.auth_data != AUTH_DATA or not hmac.compare_digest(statement, expected):
        raise QuoteRejected("attestation_key_binding", "QE report does not certify this attestation key")
    if not verifies(att_key, quote.signature, raw[:SIGNED_LEN]):
        raise QuoteRejected("quote_signature", "attestation key signature over the quote does not verify")


def _check_policy(
    body: ReportBody, mrenclaves: set[bytes] | None, mrsigners: set[bytes] | None, min_isv_svn: int
) -> None:
    if mrenclaves is not None and body.mrenclave not in mrenclaves:
        raise QuoteRejected("mrenclave", f"MRENCLAVE {body.mrenclave.hex()} not allowed by the policy")
    if mrsigners is not None and body.mrsigner not in mrsigners:
        raise QuoteRejected("mrsigner", f"MRSIGNER {body.mrsigner.hex()} not allowed by the policy")
    if body.isv_svn < min_isv_svn:
        raise QuoteRejected("isv_svn", f"ISV_SVN {body.isv_svn} below the minimum {min_isv_svn}")


def _check_binding(body: ReportBody, expected: bytes, fresh_block_hashes: set[str] | None) -> None:
    if not hmac.compare_digest(body.report_data, expected):
        raise QuoteRejected("report_data", "REPORT_DATA differs from the expected binding")
    block = body.report_data[32:].hex()
    if fresh_block_hashes is not None and block not in fresh_block_hashes:
        raise QuoteRejected("stale", f"block hash {block} is not among the recent blocks")


def verify_quote(
    quote: bytes,
    *,
    root_public_key: bytes,
    allowed_mrenclaves: set[bytes] | None,
    allowed_mrsigners: set[bytes] | None,
    min_isv_svn: int,
    expected_report_data: bytes,
    fresh_block_hashes: set[str] | None = None,
) -> VerifiedQuote:
    """Verify a simulated quote against the genesis root and a policy, or raise :class:`QuoteRejected`.

    Checks, in order: layout and every length; simulated vendor id and DEBUG attribute; the root's
    certification of the attestation key (``root_public_key``: 65-byte SEC1 point from genesis); the
    quote signature; MRENCLAVE and MRSIGNER against the allowed sets (``None`` skips one of them, never
    both); ISV_SVN >= ``min_isv_svn``; REPORT_DATA equal to ``expected_report_data`` (rebuilt with
    :func:`report_data` from the keys, task id and block hash the enclave presented); and, when
    ``fresh_block_hashes`` is given, that the block hash in REPORT_DATA[32:] is one of them. Leave it
    ``None`` only if the verifier itself chose the block hash inside ``expected_report_data``.
    Raises ``ValueError`` (a caller bug, not a bad quote) if the policy pins neither measurement.
    """
    if allowed_mrenclaves is None and allowed_mrsigners is None:
        raise ValueError("a quote policy must pin MRENCLAVE or MRSIGNER (or both)")
    try:
        parsed = _parse(quote)
        _check_chain(quote, parsed, root_public_key)
        _check_policy(parsed.body, allowed_mrenclaves, allowed_mrsigners, min_isv_svn)
        _check_binding(parsed.body, expected_report_data, fresh_block_hashes)
    except QuoteRejected as exc:
        _log.info("quote rejected: %s", exc.detail)
        raise
    return _verified(quote, parsed.body)
