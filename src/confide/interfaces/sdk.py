"""Python SDK: the small front door for driving the platform contract.

Every function builds one transaction, signs it with the caller's identity,
submits it to a ledger backend and returns the :class:`Receipt`. A refusal
raises :class:`TxRefused` with the contract's code and reason; nothing changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from ..crypto import Identity
from ..ledger import Code, LedgerBackend, Receipt, TxRefused, build_tx

__all__ = [
    "add_member",
    "apply_for",
    "approve",
    "create_unit",
    "decide_release",
    "finish_run",
    "publish_version",
    "register_dataset",
    "reject",
    "revoke",
    "send",
    "start_run",
    "submit_task",
]


def send(ledger: LedgerBackend, who: Identity, tx_type: str, payload: dict[str, Any]) -> Receipt:
    """Sign and submit one tx; raise :class:`TxRefused` unless the contract accepted it."""
    stx = build_tx(who, ledger.chain_id, tx_type, payload)
    receipt = ledger.submit(stx)
    if receipt.code != 0:
        raise TxRefused(receipt.tx_id, receipt.code, Code(receipt.code).name, receipt.reason)
    return receipt


def create_unit(
    ledger: LedgerBackend, admin: Identity, unit: str, name: str, description: str = ""
) -> Receipt:
    return send(ledger, admin, "unit.create", {"unit": unit, "name": name, "description": description})


def add_member(
    ledger: LedgerBackend,
    admin: Identity,
    member: Identity,
    *,
    name: str,
    roles: Sequence[str],
    unit: str | None = None,
) -> Receipt:
    payload: dict[str, Any] = {"public_key": member.public_hex, "name": name, "roles": list(roles)}
    if unit is not None:
        payload["unit"] = unit
    return send(ledger, admin, "member.add", payload)


def register_dataset(
    ledger: LedgerBackend,
    owner: Identity,
    *,
    unit: str,
    name: str,
    title: str,
    kind: str,
    schema: Sequence[dict[str, Any]],
    row_count: int,
    content_digest: str,
    description: str = "",
    tags: Sequence[str] = (),
    visibility: dict[str, Any] | None = None,
    approval_levels: Sequence[str] = ("unit",),
    min_group_size: int | None = None,
) -> Receipt:
    """Register a dataset; ``min_group_size``: every computed output row must aggregate that many rows."""
    extra = {} if min_group_size is None else {"min_group_size": min_group_size}
    return send(
        ledger,
        owner,
        "dataset.register",
        extra
        | {
            "unit": unit,
            "name": name,
            "title": title,
            "kind": kind,
            "schema": list(schema),
            "row_count": row_count,
            "content_digest": content_digest,
            "description": description,
            "tags": list(tags),
            "visibility": visibility or {"mode": "consortium", "orgs": []},
            "approval_levels": list(approval_levels),
        },
    )


def publish_version(
    ledger: LedgerBackend,
    owner: Identity,
    *,
    dataset: str,
    schema: Sequence[dict[str, Any]],
    row_count: int,
    content_digest: str,
) -> Receipt:
    payload = {"dataset": dataset, "schema": list(schema), "row_count": row_count}
    return send(ledger, owner, "dataset.version", {**payload, "content_digest": content_digest})


def apply_for(
    ledger: LedgerBackend,
    applicant: Identity,
    *,
    dataset: str,
    purpose: str,
    columns: Sequence[str],
    engines: Sequence[str],
    expires_at: int,
    max_uses: int,
    versions: str | Sequence[int] = "latest",
) -> Receipt:
    """Apply for use of a dataset. The receipt's ``tx_id`` is the application (grant) id."""
    return send(
        ledger,
        applicant,
        "application.submit",
        {
            "dataset": dataset,
            "purpose": purpose,
            "columns": list(columns),
            "engines": list(engines),
            "expires_at": expires_at,
            "max_uses": max_uses,
            "versions": versions if isinstance(versions, str) else list(versions),
        },
    )


def approve(ledger: LedgerBackend, approver: Identity, application: str, level: str = "unit") -> Receipt:
    return send(ledger, approver, "application.approve", {"application": application, "level": level})


def reject(
    ledger: LedgerBackend, approver: Identity, application: str, level: str = "unit", reason: str = ""
) -> Receipt:
    payload = {"application": application, "level": level, "reason": reason}
    return send(ledger, approver, "application.reject", payload)


def revoke(ledger: LedgerBackend, owner: Identity, application: str, reason: str) -> Receipt:
    return send(ledger, owner, "application.revoke", {"application": application, "reason": reason})


def submit_task(
    ledger: LedgerBackend,
    requester: Identity,
    *,
    engine: str,
    inputs: Sequence[dict[str, Any]],
    code: str | None = None,
    code_digest: str | None = None,
    params: dict[str, Any] | None = None,
    schedule: str | dict[str, Any] = "now",
) -> Receipt:
    """Submit a task. ``code`` (SQL text or function source) goes on the ledger; tee tasks need it.
    ``schedule``: ``"now"`` (runs started by hand) or e.g. ``{"kind": "cron", "cron": "0 2 * * *",
    "tz": "Asia/Shanghai", "missed": "run_once", "priority": 5}`` / ``{"kind": "at", "at": ms}``."""
    if code_digest is None:
        if code is None:
            raise ValueError("give code (or, for non-tee engines, code_digest)")
        code_digest = hashlib.sha256(code.encode("utf-8")).hexdigest()
    payload: dict[str, Any] = {"engine": engine, "inputs": list(inputs), "code_digest": code_digest}
    if code is not None:
        payload["code"] = code
    return send(ledger, requester, "task.submit", {**payload, "params": params or {}, "schedule": schedule})


def start_run(
    ledger: LedgerBackend,
    requester: Identity,
    task: str,
    input_digests: Sequence[str],
    *,
    attestation: dict[str, Any] | None = None,
) -> Receipt:
    """Start a run; a tee run names its attested enclave (from the host's ``/v1/tee/sessions``)."""
    payload: dict[str, Any] = {"task": task, "input_digests": list(input_digests)}
    if attestation is not None:
        payload["attestation"] = attestation
    return send(ledger, requester, "run.start", payload)


def finish_run(
    ledger: LedgerBackend,
    requester: Identity,
    run: str,
    *,
    output_digest: str | None,
    status: str = "succeeded",
    reason: str = "",
    statement: dict[str, Any] | None = None,
    signature: str | None = None,
) -> Receipt:
    """Report a run's end; a succeeded tee run carries the enclave's signed result statement."""
    payload: dict[str, Any] = {"run": run, "status": status, "output_digest": output_digest, "reason": reason}
    if statement is not None:
        payload |= {"statement": statement, "signature": signature}
    return send(ledger, requester, "run.finish", payload)


def decide_release(
    ledger: LedgerBackend,
    owner: Identity,
    run: str,
    dataset: str,
    decision: str = "approve",
    *,
    input_digest: str | None = None,
    reason: str = "",
) -> Receipt:
    """Approve or reject a result's release; approving a tee result names the input your node sent."""
    payload: dict[str, Any] = {"run": run, "dataset": dataset, "decision": decision, "reason": reason}
    if input_digest is not None:
        payload["input_digest"] = input_digest
    return send(ledger, owner, "release.decide", payload)
