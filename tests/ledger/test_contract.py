"""Every transition of the platform contract and every refusal path.

Each refusal is checked through ``Consortium.refused``, which also asserts
that the refused tx changed neither the state root nor the chain height.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from confide.crypto import Identity
from confide.ledger import Code, SignedTx
from factories import ATTESTATION, DAY, SCHEMA, Consortium, digest


@pytest.fixture
def c() -> Consortium:
    return Consortium.create()


def code_of(exc: Exception) -> Code:
    return Code(exc.code)


# -- org structure -------------------------------------------------------------


def test_unit_create_by_admin_and_refusals(c: Consortium) -> None:
    c.send(c.admins["tax"], "unit.create", {"unit": "audit", "name": "Audit"})
    assert c.query("unit/tax/audit")["name"] == "Audit"
    dup = c.refused(c.admins["tax"], "unit.create", {"unit": "audit", "name": "Again"})
    assert code_of(dup) is Code.ALREADY_EXISTS
    by_owner = c.refused(c.owners["tax"], "unit.create", {"unit": "x", "name": "X"})
    assert code_of(by_owner) is Code.FORBIDDEN


def test_member_add_and_refusals(c: Consortium) -> None:
    new = Identity.generate()
    c.send(c.admins["power"], "member.add", {"public_key": new.public_hex, "name": "A", "roles": ["auditor"]})
    assert c.query(f"member/{new.key_id}")["org"] == "power"
    cases = [
        (
            c.owners["power"],
            {"public_key": Identity.generate().public_hex, "name": "B", "roles": ["analyst"]},
            Code.FORBIDDEN,
        ),
        (
            c.admins["power"],
            {"public_key": new.public_hex, "name": "A2", "roles": ["analyst"]},
            Code.ALREADY_EXISTS,
        ),
        (
            c.admins["power"],
            {"public_key": Identity.generate().public_hex, "name": "C", "roles": ["unit_owner"]},
            Code.MALFORMED,
        ),
        (
            c.admins["power"],
            {
                "public_key": Identity.generate().public_hex,
                "name": "D",
                "roles": ["unit_owner"],
                "unit": "nope",
            },
            Code.NOT_FOUND,
        ),
        (c.admins["power"], {"public_key": "ab" * 40, "name": "E", "roles": ["analyst"]}, Code.MALFORMED),
        (
            c.admins["power"],
            {"public_key": Identity.generate().public_hex, "name": "F", "roles": ["king"]},
            Code.MALFORMED,
        ),
    ]
    for who, payload, code in cases:
        assert code_of(c.refused(who, "member.add", payload)) is code, payload


def test_member_remove_disables_key(c: Consortium) -> None:
    analyst = c.analyst
    assert analyst is not None
    c.send(c.admins["bank"], "member.remove", {"key_id": analyst.key_id})
    refused = c.refused(analyst, "application.submit", {})
    assert code_of(refused) is Code.UNKNOWN_SIGNER
    again = c.refused(c.admins["bank"], "member.remove", {"key_id": analyst.key_id})
    assert code_of(again) is Code.INVALID_STATE
    self_remove = c.refused(c.admins["bank"], "member.remove", {"key_id": c.admins["bank"].key_id})
    assert code_of(self_remove) is Code.INVALID_STATE
    other_org = c.refused(c.admins["bank"], "member.remove", {"key_id": c.owners["tax"].key_id})
    assert code_of(other_org) is Code.FORBIDDEN


# -- catalog -------------------------------------------------------------------


def test_dataset_register_records_metadata_only(c: Consortium) -> None:
    ds = c.register_tax_dataset(tags=["b", "a", "a"])
    rec = c.query(f"dataset/{ds}")
    assert rec["org"] == "tax" and rec["unit"] == "collection"
    assert rec["versions"][0]["version"] == 1 and rec["versions"][0]["row_count"] == 1000
    assert rec["tags"] == ["a", "b"]
    tree = c.query("catalog")
    tax = next(o for o in tree if o["id"] == "tax")
    assert tax["units"][0]["datasets"][0]["id"] == ds


@pytest.mark.parametrize(
    ("signer", "over", "code"),
    [
        ("power_owner", {}, Code.NOT_FOUND),  # power has no unit 'collection'
        ("analyst", {}, Code.NOT_FOUND),
        ("tax_owner", {"unit": "ghost"}, Code.NOT_FOUND),
        ("tax_owner", {"kind": "spreadsheet"}, Code.MALFORMED),
        ("tax_owner", {"schema": [SCHEMA[0], SCHEMA[0]]}, Code.MALFORMED),
        ("tax_owner", {"content_digest": "xyz"}, Code.MALFORMED),
        ("tax_owner", {"row_count": -1}, Code.MALFORMED),
        ("tax_owner", {"visibility": {"mode": "orgs", "orgs": ["mars"]}}, Code.NOT_FOUND),
        ("tax_owner", {"visibility": {"mode": "orgs", "orgs": []}}, Code.MALFORMED),
        ("tax_owner", {"approval_levels": ["org", "unit"]}, Code.MALFORMED),
        ("tax_owner", {"surprise": 1}, Code.MALFORMED),
    ],
)
def test_dataset_register_refusals(c: Consortium, signer: str, over: dict, code: Code) -> None:
    who = {"power_owner": c.owners["power"], "analyst": c.analyst, "tax_owner": c.owners["tax"]}[signer]
    payload = {
        "unit": "collection",
        "name": "x",
        "title": "X",
        "kind": "table",
        "schema": SCHEMA,
        "row_count": 1,
        "content_digest": digest("x"),
        **over,
    }
    assert code_of(c.refused(who, "dataset.register", payload)) is code


def test_dataset_register_wrong_unit_owner_forbidden(c: Consortium) -> None:
    c.send(c.admins["tax"], "unit.create", {"unit": "audit", "name": "Audit"})
    payload = {
        "unit": "audit",
        "name": "x",
        "title": "X",
        "kind": "table",
        "schema": SCHEMA,
        "row_count": 1,
        "content_digest": digest("x"),
    }
    assert code_of(c.refused(c.owners["tax"], "dataset.register", payload)) is Code.FORBIDDEN
    c.send(c.admins["tax"], "dataset.register", payload)  # the org admin may


def test_dataset_duplicate_version_and_update(c: Consortium) -> None:
    ds = c.register_tax_dataset()
    assert (
        code_of(
            c.refused(
                c.owners["tax"],
                "dataset.register",
                {
                    "unit": "collection",
                    "name": "filings",
                    "title": "T",
                    "kind": "table",
                    "schema": SCHEMA,
                    "row_count": 1,
                    "content_digest": digest("other"),
                },
            )
        )
        is Code.ALREADY_EXISTS
    )
    v2 = {"dataset": ds, "schema": SCHEMA, "row_count": 2000, "content_digest": digest("v2")}
    c.send(c.owners["tax"], "dataset.version", v2)
    assert [v["version"] for v in c.query(f"dataset/{ds}")["versions"]] == [1, 2]
    assert code_of(c.refused(c.owners["tax"], "dataset.version", v2)) is Code.INVALID_STATE
    v3 = {**v2, "content_digest": digest("v3")}
    assert code_of(c.refused(c.owners["power"], "dataset.version", v3)) is Code.FORBIDDEN
    ghost = {**v3, "dataset": "tax/collection/ghost"}
    assert code_of(c.refused(c.owners["tax"], "dataset.version", ghost)) is Code.NOT_FOUND
    c.send(c.owners["tax"], "dataset.update", {"dataset": ds, "title": "Renamed"})
    assert c.query(f"dataset/{ds}")["title"] == "Renamed"
    assert code_of(c.refused(c.owners["tax"], "dataset.update", {"dataset": ds})) is Code.MALFORMED
    assert code_of(c.refused(c.analyst, "dataset.update", {"dataset": ds, "title": "X"})) is Code.FORBIDDEN


# -- applications and grants -----------------------------------------------------


def test_application_single_level_approval(c: Consortium) -> None:
    ds = c.register_tax_dataset()
    app = c.apply(ds)
    assert c.query(f"application/{app}")["status"] == "pending"
    wrong = c.refused(c.owners["power"], "application.approve", {"application": app, "level": "unit"})
    assert code_of(wrong) is Code.FORBIDDEN
    c.send(c.owners["tax"], "application.approve", {"application": app, "level": "unit"})
    view = c.query(f"application/{app}")
    assert view["status"] == "approved" and view["uses_left"] == 2
    double = c.refused(c.owners["tax"], "application.approve", {"application": app, "level": "unit"})
    assert code_of(double) is Code.INVALID_STATE  # no longer pending


def test_application_two_level_policy(c: Consortium) -> None:
    ds = c.register_tax_dataset(levels=["unit", "org"])
    app = c.apply(ds)
    early = c.refused(c.admins["tax"], "application.approve", {"application": app, "level": "org"})
    assert code_of(early) is Code.INVALID_STATE
    c.send(c.owners["tax"], "application.approve", {"application": app, "level": "unit"})
    assert c.query(f"application/{app}")["status"] == "pending"
    double = c.refused(c.owners["tax"], "application.approve", {"application": app, "level": "unit"})
    assert code_of(double) is Code.DUPLICATE_DECISION
    owner_at_org = c.refused(c.owners["tax"], "application.approve", {"application": app, "level": "org"})
    assert code_of(owner_at_org) is Code.FORBIDDEN
    other_admin = c.refused(c.admins["power"], "application.approve", {"application": app, "level": "org"})
    assert code_of(other_admin) is Code.FORBIDDEN
    c.send(c.admins["tax"], "application.approve", {"application": app, "level": "org"})
    assert [a["level"] for a in c.query(f"application/{app}")["approvals"]] == ["unit", "org"]
    assert c.query(f"application/{app}")["status"] == "approved"


def test_nobody_approves_their_own_application(c: Consortium) -> None:
    ds = c.register_tax_dataset(levels=["org"])
    app = c.apply(ds, who=c.admins["tax"])
    refused = c.refused(c.admins["tax"], "application.approve", {"application": app, "level": "org"})
    assert code_of(refused) is Code.FORBIDDEN


def test_level_not_in_policy(c: Consortium) -> None:
    ds = c.register_tax_dataset()
    app = c.apply(ds)
    refused = c.refused(c.admins["tax"], "application.approve", {"application": app, "level": "org"})
    assert code_of(refused) is Code.INVALID_STATE


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"dataset": "tax/collection/ghost"}, Code.NOT_FOUND),
        ({"columns": ["credit_code", "salary"]}, Code.OUT_OF_SCOPE),
        ({"engines": ["quantum"]}, Code.MALFORMED),
        ({"expires_at": 0}, Code.EXPIRED),
        ({"max_uses": 0}, Code.MALFORMED),
        ({"versions": [7]}, Code.NOT_FOUND),
        ({"purpose": ""}, Code.MALFORMED),
    ],
)
def test_application_submit_refusals(c: Consortium, over: dict, code: Code) -> None:
    ds = c.register_tax_dataset()
    payload = {
        "dataset": ds,
        "purpose": "p",
        "columns": ["credit_code"],
        "engines": ["tee"],
        "expires_at": c.clock.now + DAY,
        "max_uses": 1,
        **over,
    }
    assert code_of(c.refused(c.analyst, "application.submit", payload)) is code


def test_application_needs_analyst_role_and_visibility(c: Consortium) -> None:
    ds = c.register_tax_dataset(visibility={"mode": "orgs", "orgs": ["power"]})
    payload = {
        "dataset": ds,
        "purpose": "p",
        "columns": ["credit_code"],
        "engines": ["tee"],
        "expires_at": c.clock.now + DAY,
        "max_uses": 1,
    }
    assert code_of(c.refused(c.analyst, "application.submit", payload)) is Code.NOT_VISIBLE
    assert code_of(c.refused(c.owners["power"], "application.submit", payload)) is Code.FORBIDDEN
    c.send(c.admins["power"], "application.submit", payload)  # visible to power, admin may apply


def test_reject_then_no_approval(c: Consortium) -> None:
    ds = c.register_tax_dataset()
    app = c.apply(ds)
    c.send(c.owners["tax"], "application.reject", {"application": app, "level": "unit", "reason": "no"})
    assert c.query(f"application/{app}")["status"] == "rejected"
    late = c.refused(c.owners["tax"], "application.approve", {"application": app, "level": "unit"})
    assert code_of(late) is Code.INVALID_STATE


def test_revoke_and_withdraw(c: Consortium) -> None:
    ds, app = c.grant()
    by_applicant = c.refused(c.analyst, "application.revoke", {"application": app, "reason": "x"})
    assert code_of(by_applicant) is Code.FORBIDDEN
    c.send(c.owners["tax"], "application.revoke", {"application": app, "reason": "policy change"})
    assert c.query(f"application/{app}")["status"] == "revoked"
    twice = c.refused(c.owners["tax"], "application.revoke", {"application": app, "reason": "x"})
    assert code_of(twice) is Code.INVALID_STATE
    app2 = c.apply(ds)
    other = c.refused(c.owners["tax"], "application.withdraw", {"application": app2, "reason": "x"})
    assert code_of(other) is Code.FORBIDDEN
    c.send(c.analyst, "application.withdraw", {"application": app2, "reason": "not needed"})
    assert c.query(f"application/{app2}")["status"] == "withdrawn"
    ghost = c.refused(c.owners["tax"], "application.revoke", {"application": "0" * 64, "reason": "x"})
    assert code_of(ghost) is Code.NOT_FOUND


def test_expiry_is_block_time(c: Consortium) -> None:
    _, app = c.grant(expires_at=c.clock.now + DAY)
    assert c.query(f"application/{app}")["status"] == "approved"
    c.clock.advance(DAY + 1)
    assert c.query(f"application/{app}")["status"] == "expired"
    filtered = c.query("applications?status=expired")
    assert [a["id"] for a in filtered] == [app]


# -- tasks, runs, releases --------------------------------------------------------


def _task(c: Consortium, ds: str, app: str, **over: object) -> dict:
    payload = {
        "engine": "tee",
        "inputs": [{"dataset": ds, "grant": app, "columns": ["credit_code"]}],
        "code_digest": digest("score.sql"),
        "code": "score.sql",
        "params": {"threshold": 600},
        "schedule": "now",
    }
    payload.update(over)
    return payload


def test_task_submit_and_refusals(c: Consortium) -> None:
    ds, app = c.grant()
    task = c.send(c.analyst, "task.submit", _task(c, ds, app)).tx_id
    assert c.query(f"task/{task}")["status"] == "active"
    other = Identity.generate()
    c.send(
        c.admins["bank"], "member.add", {"public_key": other.public_hex, "name": "o", "roles": ["analyst"]}
    )
    cases = [
        (other, _task(c, ds, app), Code.FORBIDDEN),
        (c.analyst, _task(c, ds, app, engine="mpc"), Code.OUT_OF_SCOPE),
        (
            c.analyst,
            _task(c, ds, app, inputs=[{"dataset": ds, "grant": app, "columns": ["secret_notes"]}]),
            Code.OUT_OF_SCOPE,
        ),
        (
            c.analyst,
            _task(c, ds, app, inputs=[{"dataset": ds, "grant": app, "columns": ["credit_code"]}] * 2),
            Code.MALFORMED,
        ),
        (c.analyst, _task(c, "tax/collection/ghost", app), Code.NOT_FOUND),
        (c.analyst, _task(c, ds, "0" * 64), Code.NOT_FOUND),
    ]
    for who, payload, code in cases:
        assert code_of(c.refused(who, "task.submit", payload)) is code, payload


def test_task_on_grant_for_other_dataset_or_pending(c: Consortium) -> None:
    _, app = c.grant()
    ds2 = c.register_tax_dataset("other")
    pending = c.apply(ds2)
    wrong_ds = c.refused(c.analyst, "task.submit", _task(c, ds2, app))
    assert code_of(wrong_ds) is Code.OUT_OF_SCOPE
    not_yet = c.refused(c.analyst, "task.submit", _task(c, ds2, pending))
    assert code_of(not_yet) is Code.INVALID_STATE


def test_use_after_revoke_and_after_expiry(c: Consortium) -> None:
    ds, app = c.grant(expires_at=c.clock.now + DAY)
    task = c.send(c.analyst, "task.submit", _task(c, ds, app)).tx_id
    c.clock.advance(DAY)
    expired = c.refused(
        c.analyst,
        "run.start",
        {"attestation": ATTESTATION, "task": task, "input_digests": [digest("filings v1")]},
    )
    assert code_of(expired) is Code.EXPIRED
    assert code_of(c.refused(c.analyst, "task.submit", _task(c, ds, app))) is Code.EXPIRED
    ds2, app2 = c.grant(c.register_tax_dataset("b"))
    task2 = c.send(c.analyst, "task.submit", _task(c, ds2, app2)).tx_id
    c.send(c.owners["tax"], "application.revoke", {"application": app2, "reason": "breach"})
    revoked = c.refused(
        c.analyst, "run.start", {"attestation": ATTESTATION, "task": task2, "input_digests": [digest("b v1")]}
    )
    assert code_of(revoked) is Code.REVOKED


def test_runs_consume_uses_until_exhausted(c: Consortium) -> None:
    ds, app = c.grant(max_uses=2)
    task = c.send(c.analyst, "task.submit", _task(c, ds, app)).tx_id
    start = {"attestation": ATTESTATION, "task": task, "input_digests": [digest("filings v1")]}
    c.send(c.analyst, "run.start", start)
    assert c.query(f"application/{app}")["uses_left"] == 1
    c.send(c.analyst, "run.start", start)
    assert c.query(f"application/{app}")["status"] == "exhausted"
    assert code_of(c.refused(c.analyst, "run.start", start)) is Code.EXHAUSTED


def test_run_input_digest_must_match_granted_version(c: Consortium) -> None:
    ds, pinned = c.grant(versions=[1])
    _, latest = c.grant(ds)
    c.send(
        c.owners["tax"],
        "dataset.version",
        {"dataset": ds, "schema": SCHEMA, "row_count": 5, "content_digest": digest("filings v2")},
    )
    t_pinned = c.send(c.analyst, "task.submit", _task(c, ds, pinned)).tx_id
    t_latest = c.send(c.analyst, "task.submit", _task(c, ds, latest)).tx_id
    v1, v2 = digest("filings v1"), digest("filings v2")
    assert (
        code_of(
            c.refused(
                c.analyst, "run.start", {"attestation": ATTESTATION, "task": t_pinned, "input_digests": [v2]}
            )
        )
        is Code.OUT_OF_SCOPE
    )
    assert (
        code_of(
            c.refused(
                c.analyst, "run.start", {"attestation": ATTESTATION, "task": t_latest, "input_digests": [v1]}
            )
        )
        is Code.OUT_OF_SCOPE
    )
    c.send(c.analyst, "run.start", {"attestation": ATTESTATION, "task": t_pinned, "input_digests": [v1]})
    c.send(c.analyst, "run.start", {"attestation": ATTESTATION, "task": t_latest, "input_digests": [v2]})
    bad_len = c.refused(
        c.analyst, "run.start", {"attestation": ATTESTATION, "task": t_latest, "input_digests": [v2, v2]}
    )
    assert code_of(bad_len) is Code.MALFORMED


def test_cancelled_task_cannot_run(c: Consortium) -> None:
    ds, app = c.grant()
    task = c.send(c.analyst, "task.submit", _task(c, ds, app)).tx_id
    assert code_of(c.refused(c.owners["tax"], "task.cancel", {"task": task})) is Code.FORBIDDEN
    c.send(c.analyst, "task.cancel", {"task": task, "reason": "changed my mind"})
    refused = c.refused(
        c.analyst,
        "run.start",
        {"attestation": ATTESTATION, "task": task, "input_digests": [digest("filings v1")]},
    )
    assert code_of(refused) is Code.INVALID_STATE
    assert code_of(c.refused(c.analyst, "task.cancel", {"task": task})) is Code.INVALID_STATE


def _two_owner_run(c: Consortium) -> tuple[str, str, str]:
    tax_ds, tax_app = c.grant()
    c.send(
        c.owners["power"],
        "dataset.register",
        {
            "unit": "service",
            "name": "usage",
            "title": "Usage",
            "kind": "table",
            "schema": SCHEMA,
            "row_count": 9,
            "content_digest": digest("usage v1"),
        },
    )
    power_app = c.apply("power/service/usage")
    c.send(c.owners["power"], "application.approve", {"application": power_app, "level": "unit"})
    inputs = [
        {"dataset": tax_ds, "grant": tax_app, "columns": ["credit_code"]},
        {"dataset": "power/service/usage", "grant": power_app, "columns": ["credit_code"]},
    ]
    task = c.send(c.analyst, "task.submit", _task(c, tax_ds, tax_app, inputs=inputs)).tx_id
    run = c.send(
        c.analyst,
        "run.start",
        {
            "attestation": ATTESTATION,
            "task": task,
            "input_digests": [digest("filings v1"), digest("usage v1")],
        },
    ).tx_id
    return tax_ds, "power/service/usage", run


def _succeeded(c: Consortium, run: str, **over: object) -> dict:
    """run.finish for an attested tee run: the statement binds task, quote, output and inputs."""
    rec = c.query(f"run/{run}")
    task = c.query(f"task/{rec['task']}")
    statement = {
        "task_id": task["id"],
        "quote_digest": rec["attestation_digest"],
        "output_digest": digest("out"),
        "tee_type": "simulated",
        "input_digests": {i["dataset"]: digest(f"sent {i['dataset']}") for i in task["inputs"]},
        "min_group_size": 0,
        "preview": {"rows": 3, "columns": []},
    }
    statement.update(over)
    payload = {"run": run, "status": "succeeded", "output_digest": digest("out")}
    return payload | {"statement": statement, "signature": "ab" * 64}


def _approve(dataset: str, run: str) -> dict:
    return {"run": run, "dataset": dataset, "decision": "approve", "input_digest": digest(f"sent {dataset}")}


def test_release_needs_every_owner(c: Consortium) -> None:
    tax_ds, power_ds, run = _two_owner_run(c)
    early = c.refused(c.owners["tax"], "release.decide", _approve(tax_ds, run))
    assert code_of(early) is Code.NOT_FOUND  # no result yet
    bad = c.refused(c.analyst, "run.finish", {"run": run, "status": "succeeded"})
    assert code_of(bad) is Code.MALFORMED
    unattested = c.refused(
        c.analyst, "run.finish", {"run": run, "status": "succeeded", "output_digest": digest("out")}
    )
    assert code_of(unattested) is Code.MALFORMED  # a tee result comes with the enclave's statement
    for bad_statement in (
        {"quote_digest": digest("another enclave")},
        {"task_id": digest("another task")},
        {"input_digests": {tax_ds: digest("sent")}},
        {"min_group_size": "0"},
    ):
        assert code_of(c.refused(c.analyst, "run.finish", _succeeded(c, run, **bad_statement))) in (
            Code.MALFORMED,
            Code.OUT_OF_SCOPE,
        )
    c.send(c.analyst, "run.finish", _succeeded(c, run))
    assert c.query(f"run/{run}")["status"] == "succeeded"
    again = c.refused(c.analyst, "run.finish", {"run": run, "status": "failed"})
    assert code_of(again) is Code.INVALID_STATE
    not_owner = c.refused(c.owners["power"], "release.decide", _approve(tax_ds, run))
    assert code_of(not_owner) is Code.FORBIDDEN
    not_input = c.refused(
        c.owners["tax"],
        "release.decide",
        {"run": run, "dataset": "tax/collection/zzz", "decision": "approve"},
    )
    assert code_of(not_input) is Code.NOT_FOUND
    blind = c.refused(c.owners["tax"], "release.decide", _approve(tax_ds, run) | {"input_digest": None})
    assert code_of(blind) is Code.OUT_OF_SCOPE  # an owner approves only the input its node sent
    other = _approve(tax_ds, run) | {"input_digest": digest("something else")}
    assert code_of(c.refused(c.owners["tax"], "release.decide", other)) is Code.OUT_OF_SCOPE
    c.send(c.owners["tax"], "release.decide", _approve(tax_ds, run))
    assert c.query(f"release/{run}")["status"] == "pending"  # power has not agreed yet
    twice = c.refused(c.owners["tax"], "release.decide", _approve(tax_ds, run))
    assert code_of(twice) is Code.DUPLICATE_DECISION
    c.send(c.owners["power"], "release.decide", _approve(power_ds, run))
    assert c.query(f"release/{run}")["status"] == "released"
    assert c.query(f"release/{run}")["decisions"][tax_ds]["input_digest"] == digest(f"sent {tax_ds}")


def test_release_rejected_by_one_owner(c: Consortium) -> None:
    tax_ds, power_ds, run = _two_owner_run(c)
    c.send(c.analyst, "run.finish", _succeeded(c, run))
    c.send(c.owners["power"], "release.decide", {"run": run, "dataset": power_ds, "decision": "reject"})
    assert c.query(f"release/{run}")["status"] == "rejected"
    late = c.refused(c.owners["tax"], "release.decide", _approve(tax_ds, run))
    assert code_of(late) is Code.INVALID_STATE


def test_failed_run_has_no_release(c: Consortium) -> None:
    _, _, run = _two_owner_run(c)
    c.send(c.analyst, "run.finish", {"run": run, "status": "failed", "reason": "peer down"})
    assert c.query(f"run/{run}")["reason"] == "peer down"
    with pytest.raises(LookupError):
        c.query(f"release/{run}")


# -- envelope: replay, windows, signatures, malformed ------------------------------


def test_replayed_tx_refused(c: Consortium) -> None:
    stx = c.tx(c.admins["tax"], "unit.create", {"unit": "r", "name": "R"})
    c.chain.submit(stx)
    with pytest.raises(Exception) as info:
        c.chain.submit(stx)
    assert code_of(info.value) is Code.REPLAYED


def test_stale_and_future_created_at(c: Consortium) -> None:
    window = c.genesis.params.tx_window_ms
    old = c.refused(
        c.admins["tax"], "unit.create", {"unit": "o", "name": "O"}, created_at=c.clock.now - window - 1
    )
    assert code_of(old) is Code.STALE
    skew = c.genesis.params.max_clock_skew_ms
    future = c.refused(
        c.admins["tax"], "unit.create", {"unit": "f", "name": "F"}, created_at=c.clock.now + skew + 1
    )
    assert code_of(future) is Code.STALE


def test_signature_signer_chain_and_type_checks(c: Consortium) -> None:
    from confide.ledger import build_tx

    good = c.tx(c.admins["tax"], "unit.create", {"unit": "s", "name": "S"})
    forged = SignedTx(good.body, bytes([good.signature[0] ^ 1]) + good.signature[1:])
    with pytest.raises(Exception) as info:
        c.chain.submit(forged)
    assert code_of(info.value) is Code.BAD_SIGNATURE
    other_key = SignedTx(good.body, c.admins["bank"].sign(b"confide-tx-v1\x00" + good.body))
    with pytest.raises(Exception) as info:
        c.chain.submit(other_key)
    assert code_of(info.value) is Code.BAD_SIGNATURE
    stranger = Identity.generate()
    assert code_of(c.refused(stranger, "unit.create", {"unit": "s", "name": "S"})) is Code.UNKNOWN_SIGNER
    wrong_chain = build_tx(
        c.admins["tax"], "other-chain", "unit.create", {"unit": "s", "name": "S"}, created_at=c.clock.now
    )
    with pytest.raises(Exception) as info:
        c.chain.submit(wrong_chain)
    assert code_of(info.value) is Code.WRONG_CHAIN
    assert code_of(c.refused(c.admins["tax"], "unit.explode", {})) is Code.UNKNOWN_TYPE


@pytest.mark.parametrize(
    "body",
    [
        b'{"chain":"test-chain"}',
        b"not json",
        b'{ "chain": "test-chain" }',
        b'{"chain":"test-chain","created_at":1.5,"nonce":"00","payload":{},"signer":"aa","type":"a.b"}',
    ],
)
def test_malformed_envelopes_refused(c: Consortium, body: bytes) -> None:
    stx = SignedTx(body, c.admins["tax"].sign(b"confide-tx-v1\x00" + body))
    with pytest.raises(Exception) as info:
        c.chain.submit(stx)
    assert code_of(info.value) is Code.MALFORMED


def test_queries_reject_unknown_paths(c: Consortium) -> None:
    with pytest.raises(LookupError):
        c.query("nonsense")
    with pytest.raises(LookupError):
        c.query("dataset/tax/collection/none")
    assert {o["id"] for o in c.query("orgs")} == {"bank", "tax", "power"}
    assert c.query("consortium")["chain_id"] == "test-chain"
    assert len(c.query("members/bank")) == 3


def test_tee_task_carries_its_code_on_the_ledger(c: Consortium) -> None:
    ds, app = c.grant()
    task = c.send(c.analyst, "task.submit", _task(c, ds, app)).tx_id
    assert c.query(f"task/{task}")["code"] == "score.sql"  # owners can read what will run
    no_code = {k: v for k, v in _task(c, ds, app).items() if k != "code"}
    assert code_of(c.refused(c.analyst, "task.submit", no_code)) is Code.MALFORMED
    wrong = _task(c, ds, app, code="SELECT * FROM secrets")
    refused = c.refused(c.analyst, "task.submit", wrong)
    assert code_of(refused) is Code.MALFORMED and "SHA-256 of code" in refused.reason


def test_genesis_tee_policy_validated_and_digest_stable() -> None:
    from confide.ledger import Genesis
    from factories import make_genesis

    g, _, _ = make_genesis()
    doc = g.model_dump(mode="json")
    assert "tee" not in json.loads(g.canonical())  # defaults omitted: older genesis files keep their digest
    root = "04" + "ab" * 64
    runtime = {
        "name": "r",
        "runtime_digest": "0" * 64,
        "mrsigner": "1" * 64,
        "isv_prod_id": 7,
        "min_isv_svn": 2,
    }
    with_tee = Genesis.model_validate(
        {**doc, "tee": {"attestation_roots": [root], "trusted_runtimes": [runtime]}}
    )
    assert with_tee.digest() != g.digest()
    with pytest.raises(ValueError, match="P-256"):
        Genesis.model_validate({**doc, "tee": {"attestation_roots": ["04abc"]}})


def test_tee_run_names_its_attested_enclave(c: Consortium) -> None:
    ds, app = c.grant()
    task = c.send(c.analyst, "task.submit", _task(c, ds, app)).tx_id
    bare = c.refused(c.analyst, "run.start", {"task": task, "input_digests": [digest("filings v1")]})
    assert code_of(bare) is Code.MALFORMED
    wrong_digest = {"attestation_digest": digest("not the quote"), "attestation": ATTESTATION}
    start = {"task": task, "input_digests": [digest("filings v1")]}
    assert code_of(c.refused(c.analyst, "run.start", start | wrong_digest)) is Code.MALFORMED
    run = c.send(c.analyst, "run.start", start | {"attestation": ATTESTATION}).tx_id
    rec = c.query(f"run/{run}")
    assert rec["attestation"] == ATTESTATION
    assert rec["attestation_digest"] == hashlib.sha256(bytes.fromhex(ATTESTATION["quote"])).hexdigest()


def test_min_group_policy_binds_the_statement_and_the_release(c: Consortium) -> None:
    ds = c.register_tax_dataset("grouped", min_group_size=10)
    assert c.query(f"dataset/{ds}")["min_group_size"] == 10
    _, app = c.grant(ds)
    task = c.send(c.analyst, "task.submit", _task(c, ds, app)).tx_id
    start = {"task": task, "input_digests": [digest("grouped v1")], "attestation": ATTESTATION}
    run = c.send(c.analyst, "run.start", start).tx_id

    unchecked = c.refused(c.analyst, "run.finish", _succeeded(c, run, min_group_size=5))
    assert code_of(unchecked) is Code.OUT_OF_SCOPE
    assert "at least 10" in str(unchecked)
    c.send(c.analyst, "run.finish", _succeeded(c, run, min_group_size=10))
    c.send(c.owners["tax"], "release.decide", _approve(ds, run))
    assert c.query(f"release/{run}")["status"] == "released"
