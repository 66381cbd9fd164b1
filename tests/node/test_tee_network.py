"""TEE runs across three org nodes (separate processes, https): the whole path, and attacks on it.

The bank's node hosts the enclave; the tax bureau's and the power company's nodes verify its quote on
their own ledger view before they stream anything. Tests run in order on one network and build on
each other's state (grants are used up or revoked by the later ones).
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from netfixture import Network, assert_absent, env_var, owners_and_datasets, receiving_side, start_network

from confide.crypto import load_identity
from confide.crypto.canonical import canonical_bytes
from confide.crypto.httpsig import sign_request
from confide.engines.tee.attestation import AttestationKey, SimulatedRoot, make_quote, mrenclave, report_data
from confide.engines.tee.measurement import locked_deps
from confide.engines.tee.platform import runtime_build_from_json
from confide.interfaces import sdk
from confide.interfaces.client import ApiCallError, Client
from confide.interfaces.runs import cancel_run
from confide.interfaces.tee import (
    TeeRunFailed,
    approve_release,
    fetch_result,
    recipient_public,
    release_preview,
    run_tee_task,
)
from confide.ledger import TxRefused
from confide.node.tee.verify import FRESH_BLOCKS

pytestmark = pytest.mark.slow
DAY = 86_400_000
TAX_CANARY, POWER_CANARY = "CANARY-tax-5be1c07d-name", "CANARY-power-90aa13f2-serial"
N = 60
CODES = [f"91350100M00020{i:04d}" for i in range(N)]
SQL = """SELECT CASE WHEN f.revenue >= 1030 THEN 'high' ELSE 'low' END AS tier, count(*) AS group_size,
    CAST(sum(l.defaulted) AS BIGINT) AS defaults, CAST(sum(m.kwh) AS BIGINT) AS kwh
FROM loans l JOIN filings f USING (credit_code) JOIN meters m USING (credit_code)
GROUP BY 1 ORDER BY 1"""
PER_FIRM = "SELECT credit_code, 1 AS group_size, f.revenue FROM filings f ORDER BY 1"
COLUMNS = {
    "tax/collection/filings": ["credit_code", "revenue", "name"],
    "power/service/meters": ["credit_code", "kwh", "serial"],
    "bank/credit/loans": ["credit_code", "defaulted"],
}


def _write_data(root: Path) -> None:
    tax = ["credit_code,revenue,name"] + [
        f"{c},{1000 + i},{TAX_CANARY if i % 7 == 3 else f'Firm {i}'}" for i, c in enumerate(CODES)
    ]
    power = ["credit_code,kwh,serial"] + [
        f"{c},{50 + i},{POWER_CANARY if i % 9 == 4 else f'M-{i:05d}'}" for i, c in enumerate(CODES)
    ]
    bank = ["credit_code,defaulted"] + [f"{c},{int(i % 5 == 0)}" for i, c in enumerate(CODES)]
    for org, name, rows in (("tax", "filings", tax), ("power", "meters", power), ("bank", "loans", bank)):
        (root / org / "data" / f"{name}.csv").write_text("\n".join(rows) + "\n")


def _expected() -> list[dict[str, Any]]:
    out = []
    for tier, pick in (("high", lambda i: 1000 + i >= 1030), ("low", lambda i: 1000 + i < 1030)):
        idx = [i for i in range(N) if pick(i)]
        out.append(
            {
                "tier": tier,
                "group_size": len(idx),
                "defaults": sum(int(i % 5 == 0) for i in idx),
                "kwh": sum(50 + i for i in idx),
            }
        )
    return out


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("tee-net") / "consortium"
    with env_var("CONFIDE_TEE_WIRE_LOG", str(root.parent / "wire.bin")):  # the bank records what owners send
        n = start_network(root)
    yield n
    n.stop_all()


@pytest.fixture(scope="module")
def world(net: Network) -> dict[str, Any]:
    """Owners per org, a bank analyst, three datasets from CSV files, live tee grants for each."""
    _write_data(net.root)
    datasets = (
        ("tax", "collection", "filings", {}),
        ("power", "service", "meters", {"min_group_size": 5}),
        ("bank", "credit", "loans", {}),
    )
    owners, analyst = owners_and_datasets(net, datasets)
    w: dict[str, Any] = {"owners": owners, "grants": {}, "analyst": analyst}
    for dataset, columns in COLUMNS.items():
        app = sdk.apply_for(
            analyst.ledger,
            analyst.identity,
            dataset=dataset,
            purpose="credit risk by revenue tier",
            columns=columns,
            engines=["tee"],
            max_uses=20,
            expires_at=int(time.time() * 1000) + DAY,
        ).tx_id
        owner = w["owners"][dataset.split("/")[0]]
        sdk.approve(owner.ledger, owner.identity, app, "unit")
        w["grants"][dataset] = app
    net.sync()
    return w


def _task(net: Network, w: dict[str, Any], code: str, datasets: list[str] | None = None) -> str:
    analyst = w["analyst"]
    inputs = [
        {"dataset": d, "grant": w["grants"][d], "columns": COLUMNS[d]} for d in (datasets or list(COLUMNS))
    ]
    params = {"recipient": recipient_public(analyst.identity)}
    r = sdk.submit_task(
        analyst.ledger, analyst.identity, engine="tee", inputs=inputs, code=code, params=params
    )
    net.sync()
    return r.tx_id


def _raw_input(net: Network, signer_org: str, owner_org: str, run: str, dataset: str) -> httpx.Response:
    """A node-to-node input request, signed with ``signer_org``'s node key (what a host sends)."""
    node_key = load_identity(net.root / signer_org / "keys" / "node.pem")
    body = canonical_bytes({"dataset": dataset, "run": run})
    headers = sign_request(node_key, "POST", "/v1/tee/inputs", "", body) | {
        "Content-Type": "application/json"
    }
    return httpx.post(
        net.url(owner_org) + "/v1/tee/inputs", content=body, headers=headers, verify=net.verify()
    )


def _digests(w: dict[str, Any], datasets: list[str]) -> list[str]:
    return [w["analyst"].query(f"dataset/{d}")["versions"][-1]["content_digest"] for d in datasets]


def test_result_is_released_only_after_every_owner_and_verifies_on_every_node(
    net: Network, world: dict[str, Any]
) -> None:
    analyst = world["analyst"]
    task = _task(net, world, SQL)
    out = run_tee_task(analyst, task)
    run = out["run"]
    preview = out["statement"]["preview"]
    assert preview["rows"] == 2 and preview["min_group"] == {"required": 5, "smallest": 30}
    assert out["statement"]["tee_type"] == "simulated"
    net.sync()

    with pytest.raises(ApiCallError) as early:
        fetch_result(analyst, run)
    assert early.value.code == "NOT_RELEASED" and "waiting for" in early.value.message
    for i, dataset in enumerate(COLUMNS):
        owner = world["owners"][dataset.split("/")[0]]
        seen = release_preview(owner, run, dataset)
        assert seen["input_digest_sent"] == seen["input_digest_received"]  # it got exactly what I sent
        assert seen["preview"] == preview and seen["code"] == SQL
        approve_release(owner, run, dataset)
        if i < len(COLUMNS) - 1:
            net.sync()
            with pytest.raises(ApiCallError) as pending:
                fetch_result(analyst, run)
            assert pending.value.code == "NOT_RELEASED"
    net.sync()

    table = fetch_result(analyst, run)

    assert table.to_pylist() == _expected()
    for org in net.orgs:
        report = net.client(org).call("GET", f"/v1/tee/provenance/{run}")
        assert report["verified"] is True, [c for c in report["checks"] if not c["ok"]]
        assert report["node"] == org and report["tee_type"] == "simulated"
        kinds = [c.get("type") for c in report["chain"]]
        assert {"application.submit", "task.submit", "run.start", "run.finish", "release.decide"} <= set(
            kinds
        )


def test_a_scheduled_tee_task_is_hosted_and_run_by_the_requesters_node(
    net: Network, world: dict[str, Any]
) -> None:
    """At its time, the bank's node launches and quotes the enclave, starts the run naming its
    attestation (signed by the node key), the owners verify and stream, the output is sealed and the
    run reported; after every owner's approval the analyst gets the same result as a run by hand."""
    analyst = world["analyst"]
    at = int(time.time() * 1000) + 4_000
    inputs = [{"dataset": d, "grant": world["grants"][d], "columns": COLUMNS[d]} for d in COLUMNS]
    task = sdk.submit_task(
        analyst.ledger,
        analyst.identity,
        engine="tee",
        inputs=inputs,
        code=SQL,
        params={"recipient": recipient_public(analyst.identity)},
        schedule={"kind": "at", "at": at},
    ).tx_id
    net.sync()
    deadline = time.monotonic() + 60
    while True:
        (slot,) = analyst.call("GET", f"/v1/scheduler/tasks/{task}/slots")["slots"] or [{"state": "-"}]
        if slot["state"] in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert slot["state"] == "done", slot
    net.sync()
    run = analyst.query(f"run/{slot['run']}")
    assert run["slot"] == at and run["status"] == "succeeded" and run["attestation"]["host_org"] == "bank"
    assert run["started_by"] == load_identity(net.root / "bank" / "keys" / "node.pem").key_id
    for dataset in COLUMNS:
        approve_release(world["owners"][dataset.split("/")[0]], slot["run"], dataset)
    net.sync()
    assert fetch_result(analyst, slot["run"]).to_pylist() == _expected()


def test_a_cancelled_tee_run_keeps_no_sealed_output_on_the_host(net: Network, world: dict[str, Any]) -> None:
    """The enclave ran and sealed its output; the requester cancels the run instead of reporting it:
    the host erases the sealed output, and a cancelled run's session cannot run again."""
    analyst = world["analyst"]
    task = _task(net, world, SQL)
    session = analyst.call("POST", "/v1/tee/sessions", {"task": task})
    r = sdk.start_run(
        analyst.ledger,
        analyst.identity,
        task,
        _digests(world, list(COLUMNS)),
        attestation=session["attestation"],
    )
    out = analyst.call(
        "POST", f"/v1/tee/sessions/{session['session']}/run", {"run": r.tx_id, "min_height": r.height}
    )
    sealed = net.root / "bank" / "tee" / "sealed" / f"{r.tx_id}.sealed"
    assert out["statement"]["output_digest"] and sealed.exists()
    cancel_run(analyst, r.tx_id, "numbers no longer needed")
    deadline = time.monotonic() + 20
    while sealed.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not sealed.exists() and not sealed.with_suffix(".json").exists()
    with pytest.raises(ApiCallError) as refused:
        fetch_result(analyst, r.tx_id)
    assert refused.value.code == "NOT_RELEASED"

    again = analyst.call("POST", "/v1/tee/sessions", {"task": task})  # a session for a cancelled run
    with pytest.raises(ApiCallError) as ended:
        analyst.call("POST", f"/v1/tee/sessions/{again['session']}/run", {"run": r.tx_id})
    assert ended.value.code == "RUN_ENDED"


def test_inputs_go_only_to_the_hosting_node_and_only_once(net: Network, world: dict[str, Any]) -> None:
    analyst = world["analyst"]
    task = _task(net, world, SQL)
    session = analyst.call("POST", "/v1/tee/sessions", {"task": task})
    datasets = list(COLUMNS)
    r = sdk.start_run(
        analyst.ledger, analyst.identity, task, _digests(world, datasets), attestation=session["attestation"]
    )
    net.sync()

    foreign = _raw_input(net, "power", "tax", r.tx_id, "tax/collection/filings")
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "NOT_THE_HOST"
    first = _raw_input(net, "bank", "tax", r.tx_id, "tax/collection/filings")
    assert first.status_code == 200 and len(first.content) > 100
    assert TAX_CANARY.encode() not in first.content  # encrypted to the enclave
    replay = _raw_input(net, "bank", "tax", r.tx_id, "tax/collection/filings")
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "ALREADY_SENT"
    sent = world["owners"]["tax"].call("GET", f"/v1/tee/transfers/{r.tx_id}")
    assert [(t["dataset"], t["status"]) for t in sent] == [("tax/collection/filings", "sent")]
    sdk.finish_run(
        analyst.ledger, analyst.identity, r.tx_id, output_digest=None, status="failed", reason="test"
    )


def test_owners_refuse_a_changed_code_and_a_foreign_root(net: Network, world: dict[str, Any]) -> None:
    analyst = world["analyst"]
    task = _task(net, world, SQL)
    other = _task(net, world, SQL + " -- changed")  # one more byte of SQL: another MRENCLAVE
    datasets = list(COLUMNS)
    session = analyst.call("POST", "/v1/tee/sessions", {"task": other})
    att = session["attestation"]
    assert analyst.call("DELETE", f"/v1/tee/sessions/{session['session']}")["discarded"] is True
    with pytest.raises(ApiCallError) as gone:  # its enclave has exited; the quote stays a valid quote
        analyst.call("DELETE", f"/v1/tee/sessions/{session['session']}")
    assert gone.value.code == "UNKNOWN_SESSION"
    r = sdk.start_run(analyst.ledger, analyst.identity, task, _digests(world, datasets), attestation=att)
    net.sync()
    refused = _raw_input(net, "bank", "tax", r.tx_id, "tax/collection/filings")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "QUOTE_REJECTED"
    assert "mrenclave" in refused.json()["error"]["message"]
    sdk.finish_run(
        analyst.ledger, analyst.identity, r.tx_id, output_digest=None, status="failed", reason="test"
    )

    rogue = AttestationKey.create(SimulatedRoot.generate())  # certified by a root the genesis does not name
    build = runtime_build_from_json(json.loads((net.root / "tee" / "runtime-build.json").read_text()))
    session = analyst.call("POST", "/v1/tee/sessions", {"task": task})
    good = session["attestation"]
    bound = report_data(
        bytes.fromhex(good["channel_pub"]), bytes.fromhex(good["result_pub"]), task, good["block_hash"]
    )
    forged = make_quote(
        rogue,
        mrenclave=mrenclave(build.runtime_digest, locked_deps(), SQL),
        mrsigner=build.mrsigner,
        isv_prod_id=build.isv_prod_id,
        isv_svn=build.isv_svn,
        report_data=bound,
    )
    r = sdk.start_run(
        analyst.ledger,
        analyst.identity,
        task,
        _digests(world, datasets),
        attestation=good | {"quote": forged.hex()},
    )
    net.sync()
    refused = _raw_input(net, "bank", "power", r.tx_id, "power/service/meters")
    assert refused.status_code == 403 and "unknown_root" in refused.json()["error"]["message"]
    sdk.finish_run(
        analyst.ledger, analyst.identity, r.tx_id, output_digest=None, status="failed", reason="test"
    )
    assert hashlib.sha256(forged).hexdigest() == analyst.query(f"run/{r.tx_id}")["attestation_digest"]


def test_owners_refuse_a_quote_bound_to_a_stale_block(net: Network, world: dict[str, Any]) -> None:
    analyst, bank = world["analyst"], net.client("bank")
    task = _task(net, world, SQL)
    session = analyst.call("POST", "/v1/tee/sessions", {"task": task})  # bound to today's head block
    for i in range(FRESH_BLOCKS + 1):  # one block each: the quote's block falls out of the window
        sdk.create_unit(bank.ledger, bank.identity, f"filler-{i}", "filler")
    r = sdk.start_run(
        analyst.ledger,
        analyst.identity,
        task,
        _digests(world, list(COLUMNS)),
        attestation=session["attestation"],
    )
    net.sync()
    refused = _raw_input(net, "bank", "tax", r.tx_id, "tax/collection/filings")
    assert refused.status_code == 403 and "stale" in refused.json()["error"]["message"]
    sdk.finish_run(
        analyst.ledger, analyst.identity, r.tx_id, output_digest=None, status="failed", reason="test"
    )


def test_sealed_output_survives_a_host_restart(net: Network, world: dict[str, Any]) -> None:
    analyst = world["analyst"]
    two = (
        "SELECT f.revenue >= 1030 AS high, count(*) AS group_size "
        "FROM filings f JOIN meters m USING (credit_code) GROUP BY 1 ORDER BY 1"
    )
    task = _task(net, world, two, ["tax/collection/filings", "power/service/meters"])
    run = run_tee_task(analyst, task)["run"]
    net.kill("bank", signal.SIGKILL)  # the host dies with the output sealed on its disk
    net.start("bank")
    net.sync()
    for dataset in ("tax/collection/filings", "power/service/meters"):
        approve_release(world["owners"][dataset.split("/")[0]], run, dataset)
    net.sync()

    table = fetch_result(analyst, run)  # a fresh enclave of the same measurement unseals it

    assert table.column("group_size").to_pylist() == [30, 30]


def test_a_run_reports_its_progress_while_inputs_stream(
    net: Network, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import confide.interfaces.runs as runs

    monkeypatch.setattr(runs, "PROGRESS_EVERY_S", 0.02)
    lines: list[str] = []
    out = run_tee_task(world["analyst"], _task(net, world, SQL), say=lines.append)

    assert any(line.startswith("[host] ") and " frames, " in line for line in lines), lines
    done = world["analyst"].call("GET", f"/v1/tee/sessions/{out['session']}")
    assert done["state"] == "sealed" and set(done["inputs"]) == set(COLUMNS)
    assert all(v["done"] and v["frames"] >= 3 for v in done["inputs"].values())
    stranger = world["owners"]["tax"]  # another member may not watch the bank analyst's session
    with pytest.raises(ApiCallError) as refused:
        Client(net.url("bank"), stranger.identity, ca_bundle=net.bundle).call(
            "GET", f"/v1/tee/sessions/{out['session']}"
        )
    assert refused.value.code == "UNKNOWN_SESSION"


def test_output_row_below_the_minimum_group_size_is_never_produced(
    net: Network, world: dict[str, Any]
) -> None:
    analyst = world["analyst"]
    task = _task(net, world, PER_FIRM, ["tax/collection/filings", "power/service/meters"])
    with pytest.raises(TeeRunFailed) as failed:
        run_tee_task(analyst, task)
    assert failed.value.code == "ENCLAVE_BELOW_MIN_GROUP"
    run = analyst.query(f"run/{failed.value.run}")
    assert run["status"] == "failed" and "minimum group size" in run["reason"]


def test_grant_revoked_after_approval_stops_runs(net: Network, world: dict[str, Any]) -> None:
    analyst, power = world["analyst"], world["owners"]["power"]
    task = _task(net, world, SQL)
    session = analyst.call("POST", "/v1/tee/sessions", {"task": task})
    datasets = list(COLUMNS)
    r = sdk.start_run(
        analyst.ledger, analyst.identity, task, _digests(world, datasets), attestation=session["attestation"]
    )
    sdk.revoke(power.ledger, power.identity, world["grants"]["power/service/meters"], "contract ended")
    net.sync()
    with pytest.raises(ApiCallError) as refused:  # revoked after run.start: the owner's node refuses
        analyst.call("POST", f"/v1/tee/sessions/{session['session']}/run", {"run": r.tx_id})
    assert refused.value.code == "OWNER_REFUSED" and "revoked" in refused.value.message

    with pytest.raises(TxRefused) as later:  # and the ledger refuses every later run
        run_tee_task(analyst, task)
    assert "revoked" in later.value.reason


def test_canaries_never_reach_the_bank_the_ledger_or_the_wire(net: Network, world: dict[str, Any]) -> None:
    canaries = (TAX_CANARY.encode(), POWER_CANARY.encode())
    assert TAX_CANARY.encode() in (net.root / "tax" / "data" / "filings.csv").read_bytes()  # planted
    wire = (net.root.parent / "wire.bin").read_bytes()
    assert len(wire) > 10_000  # every run above streamed the canary columns, encrypted
    places = receiving_side(net, "bank")
    assert any(p.name.endswith(".sealed") for p in places)  # the sealed outputs are there, sealed
    assert_absent(canaries, places)
