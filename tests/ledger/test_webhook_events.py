"""Webhook events read off the ledger (``node.scheduler.events``): for any run, started by hand or
by a scheduler, the requester's org hears it started, failed, was cancelled or awaits release; each
input owner's org hears that its release decision is needed; both hear the release or rejection.
An org with no part in a task hears nothing of it."""

from __future__ import annotations

from typing import Any

import pytest

from confide.node.scheduler.events import ledger_events
from factories import DAY, Consortium, digest


@pytest.fixture
def c() -> Consortium:
    return Consortium.create()


def _psi_task(c: Consortium, ds: str, app: str) -> str:
    payload = {
        "engine": "psi",
        "inputs": [{"dataset": ds, "grant": app, "columns": ["credit_code"]}],
        "code_digest": digest("ecdh-psi"),
        "params": {},
    }
    return c.send(c.analyst, "task.submit", payload).tx_id


def _events(c: Consortium, org: str, since: int) -> list[dict[str, Any]]:
    db = c.chain.db
    txs = [tx for h in range(since + 1, c.chain.head().height + 1) for tx in db.txs_in_block(h)]
    return ledger_events(org, txs, c.query)


def test_each_org_hears_what_concerns_it_about_a_run_and_its_release(c: Consortium) -> None:
    ds, app = c.grant(engines=["psi"], max_uses=5, expires_at=c.clock.now + DAY)
    task = _psi_task(c, ds, app)
    since = c.chain.head().height
    run = c.send(c.analyst, "run.start", {"task": task, "input_digests": [digest("filings v1")]}).tx_id
    c.send(c.analyst, "run.finish", {"run": run, "status": "succeeded", "output_digest": digest("out")})
    bank, tax, power = (_events(c, org, since) for org in ("bank", "tax", "power"))
    assert [e["event"] for e in bank] == ["run.started", "run.awaiting_release"]
    assert bank[1]["output_digest"] == digest("out") and all(e["run"] == run for e in bank)
    assert [(e["event"], e["dataset"]) for e in tax] == [("release.decision_needed", ds)]
    assert power == []  # no part in it

    mid = c.chain.head().height
    c.send(c.owners["tax"], "release.decide", {"run": run, "dataset": ds, "decision": "approve"})
    assert [e["event"] for e in _events(c, "bank", mid)] == ["release.released"]
    assert [e["event"] for e in _events(c, "tax", mid)] == ["release.released"]
    ids = [e["id"] for e in _events(c, "bank", since)]
    assert len(ids) == len(set(ids)) == 3  # receivers de-duplicate on the id


def test_failed_and_cancelled_runs_and_a_rejection_are_heard_with_their_reason(c: Consortium) -> None:
    ds, app = c.grant(engines=["psi"], max_uses=5, expires_at=c.clock.now + DAY)
    task = _psi_task(c, ds, app)
    since = c.chain.head().height
    start = {"task": task, "input_digests": [digest("filings v1")]}
    failed, cancelled, rejected = (c.send(c.analyst, "run.start", start).tx_id for _ in range(3))
    c.send(c.analyst, "run.finish", {"run": failed, "status": "failed", "reason": "PEER_DOWN: power"})
    c.send(c.analyst, "run.finish", {"run": cancelled, "status": "cancelled", "reason": "called off"})
    c.send(c.analyst, "run.finish", {"run": rejected, "status": "succeeded", "output_digest": digest("o")})
    c.send(c.owners["tax"], "release.decide", {"run": rejected, "dataset": ds, "decision": "reject"})
    bank = [(e["event"], e["run"], e.get("reason")) for e in _events(c, "bank", since)]
    assert ("run.failed", failed, "PEER_DOWN: power") in bank
    assert ("run.cancelled", cancelled, "called off") in bank
    assert ("release.rejected", rejected, None) in bank
    tax = [e["event"] for e in _events(c, "tax", since)]
    assert tax == ["run.failed", "run.cancelled", "release.decision_needed", "release.rejected"]
