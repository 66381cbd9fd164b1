"""The provenance of a tee result, re-verified from this node's own ledger view.

Every check is computed here, from blocks this node verified itself; nothing is taken from the
requester or the host. The chain: each input's grant (application and its approvals) -> the task
(code, code digest) -> the run (grants re-checked and used, the enclave's quote) -> the enclave's
signed result statement -> each owner's approval naming the input digest its node sent -> the
release. ``verified`` is true only if every check passed.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ...engines.tee.wire import result_message
from ..context import NodeContext
from .verify import TeeRefused, verify_run_attestation

__all__ = ["provenance"]


def _tx(ctx: NodeContext, tx_id: str, what: str) -> dict[str, Any]:
    row = ctx.store.find_tx(tx_id)
    if row is None:
        return {"what": what, "tx": tx_id, "found": False}
    height = int(row["height"])
    signer = ctx.member(row["signer"]) or {}
    return {
        "what": what,
        "tx": tx_id,
        "type": row["type"],
        "height": height,
        "block_hash": ctx.store.stored_hash(height),
        "signer": row["signer"],
        "signer_org": signer.get("org"),
        "ok": row["code"] == 0,
    }


def provenance(ctx: NodeContext, run_id: str) -> dict[str, Any]:
    """The provenance report of ``run_id``: ``{verified, checks, chain, ...}``."""
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str = "") -> bool:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
        return bool(ok)

    run = ctx.query_or_none(f"run/{run_id}")
    if run is None:
        raise TeeRefused("UNKNOWN_RUN", f"run {run_id[:16]} is not on this node's ledger (yet)", 404)
    task = ctx.query(f"task/{run['task']}")
    rel = ctx.query_or_none(f"release/{run_id}") or {}
    chain: list[dict[str, Any]] = []
    for inp in task["inputs"]:
        app = ctx.query_or_none(f"application/{inp['grant']}") or {}
        chain.append(_tx(ctx, inp["grant"], f"application for {inp['dataset']}"))
        for a in app.get("approvals", []):
            chain.append(_tx(ctx, a["tx"], f"approval ({a['level']}) of {inp['dataset']}"))
        check(
            f"grant {inp['dataset']}",
            app.get("applicant") == task["requester"]
            and app.get("dataset") == inp["dataset"]
            and "tee" in app.get("engines", ()),
            f"application {inp['grant'][:16]} by the requester, engine tee, status now {app.get('status')}",
        )
    chain.append(_tx(ctx, task["id"], "task.submit"))
    chain.append(_tx(ctx, run_id, "run.start"))
    code_ok = hashlib.sha256(task["code"].encode()).hexdigest() == task["code_digest"]
    check("task code", code_ok, f"code digest {task['code_digest'][:16]} matches the code on the ledger")
    try:
        quote = verify_run_attestation(ctx, task, run)
        check(
            "quote",
            True,
            f"MRENCLAVE {quote.mrenclave.hex()[:16]} (recomputed from the task code), "
            f"MRSIGNER {quote.mrsigner.hex()[:16]}, ISV_SVN {quote.isv_svn}, tee_type {quote.tee_type}",
        )
    except TeeRefused as exc:
        check("quote", False, exc.message)
    st, sig = run.get("statement"), run.get("signature")
    if run.get("finished_tx"):
        chain.append(_tx(ctx, run["finished_tx"], "run.finish"))
    if check(
        "result statement present", isinstance(st, dict) and isinstance(sig, str), f"run is {run['status']}"
    ):
        assert isinstance(st, dict) and isinstance(sig, str)
        try:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(run["attestation"]["result_pub"]))
            key.verify(bytes.fromhex(sig), result_message(st))
            check("statement signature", True, "signed by the result key the quote binds")
        except (InvalidSignature, ValueError, KeyError):
            check("statement signature", False, "does not verify under the attested result key")
        bound = (st.get("task_id"), st.get("quote_digest"), st.get("output_digest"))
        want = (task["id"], run.get("attestation_digest"), run.get("output_digest"))
        check("statement binding", bound == want, "task, quote digest and output digest match the run")
        for d, decision in sorted(rel.get("decisions", {}).items()):
            chain.append(_tx(ctx, decision["tx"], f"release {decision['decision']} for {d}"))
            sent = st.get("input_digests", {}).get(d)
            check(
                f"owner confirmed input {d}",
                decision["decision"] == "approve" and decision.get("input_digest") == sent,
                f"the owner's approval names input digest {str(decision.get('input_digest'))[:16]}",
            )
    required, decided = set(rel.get("required", ())), set(rel.get("decisions", {}))
    check(
        "every owner approved",
        rel.get("status") == "released" and required == decided,
        f"release is {rel.get('status', 'not requested')}; {len(decided)}/{len(required)} owners decided",
    )
    check(
        "every record committed",
        all(c.get("ok") for c in chain),
        f"{len(chain)} transactions found in verified blocks",
    )
    return {
        "run": run_id,
        "task": task["id"],
        "node": ctx.config.org,
        "height": ctx.replica.height,
        "tee_type": (run.get("attestation") or {}).get("tee_type"),
        "output_digest": run.get("output_digest"),
        "verified": all(c["ok"] for c in checks),
        "checks": checks,
        "chain": chain,
    }
