"""Driving a tee run from the SDK: the requester's and the owners' side of one result.

Requester (through its org's node, the enclave host)::

    run = run_tee_task(client, task_id)          # session -> run.start -> inputs, run -> run.finish
    ...owners approve...
    table = fetch_result(client, run["run"])     # decrypted with the key derived from your identity

Owner (through its own node)::

    preview = release_preview(owner_client, run_id, dataset)   # what the requester would get
    approve_release(owner_client, run_id, dataset)             # names the input digest your node sent

The requester's result key is an X25519 key derived from its ledger identity (:func:`recipient_key`);
its public half goes into the task's ``params.recipient``, signed on the ledger, so the enclave
encrypts the output to the requester and nobody else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..crypto import Identity
from ..engines.tee.wire import open_release
from ..ledger import Receipt
from . import sdk
from .client import ApiCallError, Client
from .runs import RunFailed, input_digests, watching

__all__ = [
    "TeeRunFailed",
    "approve_release",
    "fetch_result",
    "recipient_key",
    "recipient_public",
    "release_preview",
    "run_tee_task",
]

_RECIPIENT_SALT = b"confide/tee/recipient/v1"


class TeeRunFailed(RunFailed):
    """The run failed; it is recorded as failed on the ledger with this reason."""


def recipient_key(identity: Identity) -> X25519PrivateKey:
    """The X25519 key tee results are encrypted to, derived from (and as secret as) ``identity``."""
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=_RECIPIENT_SALT, info=b"").derive(
        identity.key.to_pem()
    )
    return X25519PrivateKey.from_private_bytes(seed)


def recipient_public(identity: Identity) -> str:
    """Hex of the public half, for the task's ``params.recipient``."""
    return recipient_key(identity).public_key().public_bytes_raw().hex()


def run_tee_task(
    client: Client, task_id: str, *, say: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """One run of a tee task, hosted by ``client``'s node; the run is on the ledger either way."""
    task = client.query(f"task/{task_id}")
    digests = input_digests(client, task)
    say("[host] launching the enclave and quoting it (simulated TEE)")
    session = client.call("POST", "/v1/tee/sessions", {"task": task_id, "min_height": client.last_height})
    att = session["attestation"]
    try:
        r = sdk.start_run(client.ledger, client.identity, task_id, digests, attestation=att)
    except BaseException:  # refused (revoked, used up, ...): end the enclave now, not at its expiry
        with contextlib.suppress(ApiCallError):
            client.call("DELETE", f"/v1/tee/sessions/{session['session']}")
        raise
    run_id = r.tx_id
    say(
        f"[ledger] run.start {run_id[:16]} at block {r.height}: grants re-checked, quote {att['quote'][:16]}…"
    )
    say("[host] owners verify the quote on their own ledger view and stream their granted columns")
    try:
        with watching(client, f"/v1/tee/sessions/{session['session']}", _progress_line, say):
            out = client.call(
                "POST", f"/v1/tee/sessions/{session['session']}/run", {"run": run_id, "min_height": r.height}
            )
    except ApiCallError as exc:
        sdk.finish_run(
            client.ledger,
            client.identity,
            run_id,
            output_digest=None,
            status="failed",
            reason=exc.message[:2000],
        )
        raise TeeRunFailed(run_id, exc.code, exc.message) from None
    st = out["statement"]
    f = sdk.finish_run(
        client.ledger,
        client.identity,
        run_id,
        output_digest=st["output_digest"],
        statement=st,
        signature=out["signature"],
    )
    say(f"[ledger] run.finish at block {f.height}: output {st['output_digest'][:16]}… sealed on the host")
    out = {"run": run_id, "statement": st, "summary": out["summary"], "attestation": att, "height": f.height}
    return out | {"session": session["session"]}


def _progress_line(p: dict[str, Any]) -> str:
    """How far the host got (frames and MB per input)."""
    parts = [
        f"{d}: {v['frames']} frames, {v['bytes'] / 1e6:.1f} MB{' (done)' if v['done'] else ''}"
        for d, v in p["inputs"].items()
    ]
    return f"[host] {p['state']}: " + "; ".join(parts)


def release_preview(owner: Client, run_id: str, dataset: str) -> dict[str, Any]:
    """What an owner sees before deciding: the enclave's signed preview, the code, and its own transfer."""
    run = owner.query(f"run/{run_id}")
    task = owner.query(f"task/{run['task']}")
    sent = [t for t in owner.call("GET", f"/v1/tee/transfers/{run_id}") if t["dataset"] == dataset]
    st = run.get("statement") or {}
    return {
        "run": run_id,
        "dataset": dataset,
        "code": task["code"],
        "preview": st.get("preview"),
        "min_group_size": st.get("min_group_size"),
        "input_digest_sent": sent[0]["input_digest"] if sent else None,
        "input_digest_received": (st.get("input_digests") or {}).get(dataset),
    }


def approve_release(owner: Client, run_id: str, dataset: str) -> Receipt:
    """Approve the release, naming the input digest this owner's node recorded when it sent the data."""
    p = release_preview(owner, run_id, dataset)
    if p["input_digest_sent"] is None:
        raise ValueError(f"this node never sent {dataset} for run {run_id[:16]}; nothing to approve")
    return sdk.decide_release(
        owner.ledger, owner.identity, run_id, dataset, input_digest=p["input_digest_sent"]
    )


def fetch_result(client: Client, run_id: str) -> pa.Table:
    """The released output, decrypted with your recipient key and checked against the ledger's digest."""
    run = client.query(f"run/{run_id}")
    box = client.call("POST", f"/v1/tee/releases/{run_id}", {"min_height": client.last_height})["box"]
    return open_release(
        recipient_key(client.identity),
        bytes.fromhex(box),
        task_id=run["task"],
        output_digest=bytes.fromhex(run["output_digest"]),
    )
