"""PSI runs between two org nodes (separate processes, https): the bank and its partner ("power").

The bank's node is the receiver (its analyst requests the task); the partner's node is the sender.
Each node checks its own grant on its own ledger view before it reads an ID. Tests run in order on
one network and build on each other's state.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from netfixture import Network, grant, owners_and_datasets, receiving_side, start_network_logging_wire
from typer.testing import CliRunner

from confide.crypto import load_identity
from confide.crypto.canonical import canonical_bytes
from confide.crypto.httpsig import sign_request
from confide.interfaces import sdk
from confide.interfaces.cli import app
from confide.interfaces.client import ApiCallError
from confide.interfaces.psi import PsiRunFailed, input_digests, run_psi_task, submit_psi_task
from confide.interfaces.tasks import task_slots
from confide.ledger import TxRefused

pytestmark = pytest.mark.slow
DAY = 86_400_000
CUSTOMERS, SUBSCRIBERS = "bank/retail/customers", "power/mobile/subscribers"
SHARED = [f"+86138{i:08d}" for i in range(150)]
BANK_ONLY = [f"+86137{i:08d}" for i in range(150)]
PARTNER_ONLY = [f"+86199{i:08d}" for i in range(150)]  # the canaries: never on the bank's side
PARTNER_ONLY_RE = re.compile(rb"\+86199\d{8}")
ZOE_NFC, ZOE_NFD = unicodedata.normalize("NFC", "☎Zoë-07"), unicodedata.normalize("NFD", "☎Zoë-07")


def _write_data(root: Path) -> None:
    bank = ["phone,segment"] + [f"{p},{i % 3}" for i, p in enumerate(BANK_ONLY + SHARED + [ZOE_NFC])]
    partner_ids = PARTNER_ONLY + SHARED + SHARED[:10] + [ZOE_NFD]  # duplicates, NFD form of Zoë
    partner = ["phone,spend"] + [f"{p},{50 + i}" for i, p in enumerate(partner_ids)]
    (root / "bank" / "data" / "customers.csv").write_text("\n".join(bank) + "\n", encoding="utf-8")
    (root / "power" / "data" / "subscribers.csv").write_text("\n".join(partner) + "\n", encoding="utf-8")


def _expected() -> list[str]:
    return sorted([*SHARED, ZOE_NFC])


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    n = start_network_logging_wire(tmp_path_factory.mktemp("psi-net") / "consortium")
    yield n
    n.stop_all()


def _grant(w: dict[str, Any], dataset: str, engines: list[str]) -> str:
    owner = w["owners"][dataset.split("/")[0]]
    purpose = "customer overlap for a joint campaign"
    return grant(w["analyst"], owner, dataset, columns=["phone"], engines=engines, purpose=purpose)


@pytest.fixture(scope="module")
def world(net: Network) -> dict[str, Any]:
    """Owners for the bank and the partner, a bank analyst, two datasets, live psi grants."""
    _write_data(net.root)
    datasets = (("bank", "retail", "customers", {}), ("power", "mobile", "subscribers", {}))
    owners, analyst = owners_and_datasets(net, datasets)
    w: dict[str, Any] = {"owners": owners, "grants": {}, "analyst": analyst}
    for dataset in (CUSTOMERS, SUBSCRIBERS):
        w["grants"][dataset] = _grant(w, dataset, ["psi"])
    net.sync()
    return w


def _task(net: Network, w: dict[str, Any], partner_grant: str | None = None, engine: str = "ecdh") -> str:
    task = submit_psi_task(
        w["analyst"],
        mine=(CUSTOMERS, w["grants"][CUSTOMERS], "phone"),
        theirs=(SUBSCRIBERS, partner_grant or w["grants"][SUBSCRIBERS], "phone"),
        engine=engine,
    )
    net.sync()
    return task


def _node_post(net: Network, signer_org: str, target_org: str, path: str, body: bytes) -> httpx.Response:
    """A request signed with ``signer_org``'s node key (what a peer node sends)."""
    node_key = load_identity(net.root / signer_org / "keys" / "node.pem")
    kind = "application/json" if body.startswith(b"{") else "application/octet-stream"
    headers = sign_request(node_key, "POST", path, "", body) | {"Content-Type": kind}
    return httpx.post(net.url(target_org) + path, content=body, headers=headers, verify=net.verify())


def _psi_rows(net: Network, org: str, run: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(net.root / org / "node.sqlite")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM node_psi_runs WHERE run = ?", (run,))]
    finally:
        con.close()


def test_intersection_size_and_digest_and_the_ids_stay_on_the_bank_node(
    net: Network, world: dict[str, Any]
) -> None:
    analyst = world["analyst"]
    lines: list[str] = []
    out = run_psi_task(analyst, _task(net, world), say=lines.append)

    expected = _expected()
    digest = hashlib.sha256("\n".join(expected).encode()).hexdigest()
    assert out["intersection_size"] == len(expected) == 151
    assert out["output_digest"] == digest
    net.sync()
    run = analyst.query(f"run/{out['run']}")
    assert run["status"] == "succeeded" and run["output_digest"] == digest
    (mine,) = _psi_rows(net, "bank", out["run"])
    assert mine["role"] == "receiver" and mine["status"] == "done"
    assert sorted(json.loads(mine["ids"])) == expected
    (theirs,) = _psi_rows(net, "power", out["run"])
    assert theirs["role"] == "sender" and theirs["status"] == "done" and theirs["intersection_size"] is None
    seen = analyst.call("GET", f"/v1/psi/runs/{out['run']}")
    assert seen["parties"][0]["output_digest"] == digest and "ids" not in seen["parties"][0]
    assert any("run.finish" in line for line in lines)


def test_spu_rr22_between_the_nodes_gives_the_same_intersection_and_leaves_no_files(
    net: Network, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SecretFlow SPU's RR22, out of process on each node, its link carried over the nodes' signed
    HTTPS link (no other port between them): the same 151 IDs, digest and records as ECDH-PSI; the
    requester sees the receiver node's progress while it runs."""
    import confide.interfaces.runs as runs

    monkeypatch.setattr(runs, "PROGRESS_EVERY_S", 0.05)
    analyst = world["analyst"]
    wire = net.root.parent / "wire.bin"
    before = wire.stat().st_size if wire.exists() else 0
    lines: list[str] = []
    out = run_psi_task(analyst, _task(net, world, engine="spu-rr22"), say=lines.append)
    assert any(line.startswith("[node] PSI running (receiver)") for line in lines), lines

    expected = _expected()
    assert out["intersection_size"] == 151
    assert out["output_digest"] == hashlib.sha256("\n".join(expected).encode()).hexdigest()
    (mine,) = _psi_rows(net, "bank", out["run"])
    assert mine["status"] == "done" and sorted(json.loads(mine["ids"])) == expected
    (theirs,) = _psi_rows(net, "power", out["run"])
    assert theirs["status"] == "done" and theirs["ids"] in (None, "null")
    assert wire.stat().st_size > before  # SPU's messages went through the nodes' inboxes
    for org in ("bank", "power"):  # the run's input and output CSVs are gone (a warm spare may wait)
        assert (net.root / org / "data" / "psi-work").is_dir()
        assert not list((net.root / org / "data" / "psi-work").rglob("*.csv"))


def _scheduled_psi_task(net: Network, w: dict[str, Any], at_ms: int, partner_grant: str | None = None) -> str:
    task = sdk.submit_task(
        w["analyst"].ledger,
        w["analyst"].identity,
        engine="psi",
        inputs=[
            {"dataset": CUSTOMERS, "grant": w["grants"][CUSTOMERS], "columns": ["phone"]},
            {
                "dataset": SUBSCRIBERS,
                "grant": partner_grant or w["grants"][SUBSCRIBERS],
                "columns": ["phone"],
            },
        ],
        code_digest=hashlib.sha256(b"ecdh-psi-x25519/v1").hexdigest(),
        schedule={"kind": "at", "at": at_ms, "tz": "Asia/Shanghai"},
    ).tx_id
    net.sync()
    return task


def _slots_when(w: dict[str, Any], task: str, done: Any, timeout: float = 40.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got: dict[str, Any] = w["analyst"].call("GET", f"/v1/scheduler/tasks/{task}/slots")
        if done(got["slots"]) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_a_scheduled_psi_task_is_run_by_the_requesters_node_at_its_time(
    net: Network, world: dict[str, Any]
) -> None:
    """The bank's node starts the run at the slot (signed by its node key, naming the slot), runs the
    PSI as receiver and reports it: the same intersection as a run started by hand."""
    at = int(time.time() * 1000) + 4_000
    task = _scheduled_psi_task(net, world, at)
    got = _slots_when(world, task, lambda slots: slots and slots[0]["state"] in ("done", "failed"))
    (slot,) = got["slots"]
    assert slot["slot"] == at and slot["state"] == "done", slot
    assert slot["queued_at"] - at < 2_000  # taken up on time
    net.sync()
    run = world["analyst"].query(f"run/{slot['run']}")
    assert run["slot"] == at and run["status"] == "succeeded"
    assert run["started_by"] == load_identity(net.root / "bank" / "keys" / "node.pem").key_id
    expected = _expected()
    assert run["output_digest"] == hashlib.sha256("\n".join(expected).encode()).hexdigest()
    assert len(world["analyst"].query(f"task/{task}")["runs"]) == 1  # once

    # the requester watches it: the SDK and `confide task watch`
    (row,) = task_slots(world["analyst"], task)
    assert row["state"] == "awaiting release" and row["run"] == slot["run"]
    key = world["analyst"].identity.save(net.root.parent / "analyst.pem")
    env = {"CONFIDE_CA_BUNDLE": str(net.bundle), "CONFIDE_NODE_URL": None, "CONFIDE_KEY": None}
    args = ["task", "watch", task, "--node", net.url("bank"), "--key", str(key)]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0 and "awaiting release" in result.output and slot["run"][:16] in result.output


def test_a_scheduled_run_after_the_grant_was_revoked_fails_with_the_reason(
    net: Network, world: dict[str, Any]
) -> None:
    grant = _grant(world, SUBSCRIBERS, ["psi"])
    net.sync()
    at = int(time.time() * 1000) + 4_000
    task = _scheduled_psi_task(net, world, at, partner_grant=grant)
    partner = world["owners"]["power"]
    sdk.revoke(partner.ledger, partner.identity, grant, "contract ended")
    net.sync()
    got = _slots_when(world, task, lambda slots: slots and slots[0]["state"] in ("done", "failed"))
    (slot,) = got["slots"]
    assert slot["state"] == "failed" and "REVOKED" in slot["error"] and slot["run"] is None, slot
    assert world["analyst"].query(f"task/{task}")["runs"] == []  # no run was started
    (row,) = task_slots(world["analyst"], task)
    assert row["state"] == "failed" and "REVOKED" in row["reason"]


def test_a_slot_cancelled_before_it_is_due_starts_no_run(net: Network, world: dict[str, Any]) -> None:
    """``confide task cancel-slot``: the slot is dropped on the requester's node; at its time nothing
    starts (no run on the ledger, no grant use); a stranger cannot cancel it; a bad slot is refused."""
    at = int(time.time() * 1000) + 5_000
    task = _scheduled_psi_task(net, world, at)
    key = world["analyst"].identity.save(net.root.parent / "analyst-cancel.pem")
    env = {"CONFIDE_CA_BUNDLE": str(net.bundle), "CONFIDE_NODE_URL": None, "CONFIDE_KEY": None}
    base = ["--node", net.url("bank"), "--key", str(key)]
    bad = CliRunner().invoke(app, ["task", "cancel-slot", task, str(at + 1), *base], env=env)
    assert bad.exit_code != 0 and "NOT_A_SLOT" in bad.output
    with pytest.raises(ApiCallError) as refused:  # the partner's owner is not the requester
        world["owners"]["power"].call("POST", f"/v1/scheduler/tasks/{task}/slots/{at}/cancel", {})
    assert refused.value.code in ("UNKNOWN_TASK", "NOT_THIS_NODE")
    result = CliRunner().invoke(app, ["task", "cancel-slot", task, str(at), *base], env=env)
    assert result.exit_code == 0 and "cancelled before its run started" in result.output, result.output
    time.sleep(max(0.0, (at - time.time() * 1000) / 1000) + 2.5)  # past its time: nothing ran
    (slot,) = world["analyst"].call("GET", f"/v1/scheduler/tasks/{task}/slots")["slots"]
    assert slot["state"] == "cancelled" and slot["run"] is None
    net.sync()
    assert world["analyst"].query(f"task/{task}")["runs"] == []
    (row,) = task_slots(world["analyst"], task)
    assert row["state"] == "cancelled"


def test_no_psi_grant_means_no_task_and_a_foreign_node_is_refused(
    net: Network, world: dict[str, Any]
) -> None:
    tee_only = _grant(world, SUBSCRIBERS, ["tee"])
    net.sync()
    with pytest.raises(TxRefused) as refused:  # a grant that does not allow psi
        _task(net, world, partner_grant=tee_only)
    assert "psi" in refused.value.reason

    task = _task(net, world)
    analyst = world["analyst"]
    r = sdk.start_run(
        analyst.ledger, analyst.identity, task, input_digests(analyst, analyst.query(f"task/{task}"))
    )
    net.sync()
    body = canonical_bytes({"dataset": SUBSCRIBERS, "run": r.tx_id, "session": "ab" * 16})
    foreign = _node_post(net, "tax", "power", "/v1/psi/sessions", body)  # not the requester's org
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "NOT_REQUESTERS_NODE"
    stranger = _node_post(net, "tax", "bank", f"/v1/psi/sessions/{'cd' * 16}/messages", b"x")
    assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "UNKNOWN_SESSION"
    sdk.finish_run(
        analyst.ledger, analyst.identity, r.tx_id, output_digest=None, status="failed", reason="test"
    )


def test_a_malformed_message_aborts_the_session_with_a_clear_error(
    net: Network, world: dict[str, Any]
) -> None:
    session = "5e" * 16
    path = f"/v1/psi/sessions/{session}/messages"
    stop, accepted = threading.Event(), threading.Event()

    def inject() -> None:  # the partner's node key posts garbage as soon as the session exists
        while not stop.is_set():
            if _node_post(net, "power", "bank", path, b"\x00garbage, not a PSI message").status_code == 202:
                accepted.set()
                return

    th = threading.Thread(target=inject, daemon=True)
    th.start()
    try:
        with pytest.raises(PsiRunFailed) as failed:
            run_psi_task(world["analyst"], _task(net, world), session=session)
    finally:
        stop.set()
        th.join(10)
    assert accepted.is_set()
    assert failed.value.code == "PSI_FAILED" and "PSI" in failed.value.message
    net.sync()
    run = world["analyst"].query(f"run/{failed.value.run}")
    assert run["status"] == "failed" and "PSI_FAILED" in run["reason"]
    (mine,) = _psi_rows(net, "bank", failed.value.run)
    assert mine["status"] == "failed" and mine["ids"] in (None, "null")
    deadline = time.time() + 10
    while time.time() < deadline:  # the sender got the bank's ABORT and stopped too
        rows = _psi_rows(net, "power", failed.value.run)
        if rows and rows[0]["status"] == "failed":
            break
        time.sleep(0.1)
    assert rows[0]["status"] == "failed" and "aborted" in rows[0]["reason"]


def test_grant_revoked_after_run_start_is_refused_by_the_partner_node(
    net: Network, world: dict[str, Any]
) -> None:
    grant = _grant(world, SUBSCRIBERS, ["psi"])
    net.sync()
    analyst, partner = world["analyst"], world["owners"]["power"]
    task = _task(net, world, partner_grant=grant)
    r = sdk.start_run(
        analyst.ledger, analyst.identity, task, input_digests(analyst, analyst.query(f"task/{task}"))
    )
    sdk.revoke(partner.ledger, partner.identity, grant, "contract ended")
    net.sync()
    with pytest.raises(Exception) as refused:
        analyst.call("POST", "/v1/psi/runs", {"run": r.tx_id, "min_height": analyst.last_height})
    assert getattr(refused.value, "code", None) == "PEER_REFUSED"
    assert "GRANT_REFUSED" in str(refused.value) and "revoked" in str(refused.value)
    with pytest.raises(TxRefused) as later:  # and the ledger refuses every later run
        run_psi_task(analyst, task)
    assert "revoked" in later.value.reason


def test_partner_only_numbers_never_reach_the_bank_the_ledger_or_the_wire(
    net: Network, world: dict[str, Any]
) -> None:
    assert PARTNER_ONLY_RE.search((net.root / "power" / "data" / "subscribers.csv").read_bytes())  # planted
    wire = (net.root.parent / "wire.bin").read_bytes()
    assert len(wire) > 10_000  # the runs above went over the wire, masked
    for path in receiving_side(net, "bank"):
        data = path.read_bytes()
        assert not PARTNER_ONLY_RE.search(data), f"a partner-only number found in {path}"
