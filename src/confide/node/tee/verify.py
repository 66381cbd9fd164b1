"""A tee run's attestation, verified against this node's own ledger view (never the host's word).

The policy comes from the genesis (``tee.attestation_roots``, ``tee.trusted_runtimes``); the expected
MRENCLAVE is recomputed from a trusted runtime digest, this node's locked dependencies and the task
code *as the ledger holds it*; REPORT_DATA must bind the channel key, the result key, the task id and
the block hash the run names, and that block must be one of this node's chain, at most
:data:`FRESH_BLOCKS` blocks before the ``run.start`` that names it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ...engines.tee.attestation import QuoteRejected, VerifiedQuote, mrenclave, report_data, verify_quote
from ...engines.tee.measurement import locked_deps
from ..context import NodeContext
from ..refusal import Refused

__all__ = ["FRESH_BLOCKS", "TeeRefused", "fresh_block_hashes", "verify_run_attestation"]

FRESH_BLOCKS = 100


class TeeRefused(Refused):
    """A TEE step refused; ``code`` for machines, the message for people (never data)."""


def fresh_block_hashes(ctx: NodeContext, run_id: str) -> set[str]:
    """Hashes of this node's blocks from ``FRESH_BLOCKS`` before the run's ``run.start`` up to it."""
    row = ctx.store.find_tx(run_id)
    if row is None:
        raise TeeRefused("UNKNOWN_RUN", f"run {run_id[:16]} is not on this node's ledger", 404)
    start = int(row["height"])
    hashes = (ctx.store.stored_hash(h) for h in range(max(0, start - FRESH_BLOCKS), start + 1))
    return {h for h in hashes if h is not None}


def verify_run_attestation(ctx: NodeContext, task: dict[str, Any], run: dict[str, Any]) -> VerifiedQuote:
    """The run's quote verified on this node's view, or :class:`TeeRefused` naming what failed."""
    att = run.get("attestation")
    if task["engine"] != "tee" or not isinstance(att, dict):
        raise TeeRefused("NOT_ATTESTED", "this run names no attested enclave")
    quote = bytes.fromhex(att["quote"])
    if hashlib.sha256(quote).hexdigest() != run.get("attestation_digest"):
        raise TeeRefused("QUOTE_REJECTED", "the run's attestation digest is not the digest of its quote")
    policy = ctx.genesis.tee
    if not policy.attestation_roots or not policy.trusted_runtimes:
        raise TeeRefused(
            "NO_TEE_POLICY", "the consortium genesis names no attestation root or trusted runtime"
        )
    try:
        bound = report_data(
            bytes.fromhex(att["channel_pub"]), bytes.fromhex(att["result_pub"]), task["id"], att["block_hash"]
        )
    except ValueError as exc:
        raise TeeRefused("QUOTE_REJECTED", f"the attestation's keys are malformed: {exc}") from None
    fresh, deps = fresh_block_hashes(ctx, run["id"]), locked_deps()
    reasons: list[str] = []
    for root in policy.attestation_roots:
        for rt in policy.trusted_runtimes:
            try:
                verified = verify_quote(
                    quote,
                    root_public_key=bytes.fromhex(root),
                    allowed_mrenclaves={mrenclave(bytes.fromhex(rt.runtime_digest), deps, task["code"])},
                    allowed_mrsigners={bytes.fromhex(rt.mrsigner)},
                    min_isv_svn=rt.min_isv_svn,
                    expected_report_data=bound,
                    fresh_block_hashes=fresh,
                )
            except QuoteRejected as exc:
                reasons.append(exc.detail)
                continue
            if verified.isv_prod_id == rt.isv_prod_id:
                return verified
            reasons.append(f"isv_prod_id: {verified.isv_prod_id}, the runtime {rt.name} is {rt.isv_prod_id}")
    raise TeeRefused("QUOTE_REJECTED", "quote rejected: " + "; ".join(sorted(set(reasons))))
