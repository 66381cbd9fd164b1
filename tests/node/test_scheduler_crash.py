"""Runs stopped in the middle. A requester's node SIGKILLed during a scheduled run, then restarted:
the slot's run is on the ledger once (no duplicate), and it ends reported (failed: interrupted), not
left running (no loss). A run cancelled on the ledger while both nodes compute: each node stops its
part and keeps no result.

Its own network: 60,000 phone numbers a side, so that the PSI run lasts seconds and the kill lands
inside it (the test checks the run was still running when the node died).
"""

from __future__ import annotations

import hashlib
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from netfixture import Network, grant, owners_and_datasets, start_network

from confide.interfaces import sdk
from confide.interfaces.client import ApiCallError
from confide.interfaces.psi import PsiRunFailed, run_psi_task, submit_psi_task
from confide.interfaces.runs import cancel_run
from confide.interfaces.tasks import task_slots

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
N = 60_000
CUSTOMERS, SUBSCRIBERS = "bank/retail/customers", "power/mobile/subscribers"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    n = start_network(tmp_path_factory.mktemp("sched-crash") / "consortium")
    yield n
    n.stop_all()


@pytest.fixture(scope="module")
def world(net: Network) -> dict[str, Any]:
    bank = ["phone"] + [f"+86138{i:08d}" for i in range(N)]
    power = ["phone"] + [f"+86138{i:08d}" for i in range(N // 2, N + N // 2)]
    (net.root / "bank" / "data" / "customers.csv").write_text("\n".join(bank) + "\n")
    (net.root / "power" / "data" / "subscribers.csv").write_text("\n".join(power) + "\n")
    owners, analyst = owners_and_datasets(
        net, (("bank", "retail", "customers", {}), ("power", "mobile", "subscribers", {}))
    )
    grants = {
        dataset: grant(
            analyst,
            owners[dataset.split("/")[0]],
            dataset,
            columns=["phone"],
            engines=["psi"],
            purpose="nightly overlap count",
            max_uses=10,
        )
        for dataset in (CUSTOMERS, SUBSCRIBERS)
    }
    net.sync()
    return {"analyst": analyst, "grants": grants}


def _slot_row(net: Network, task: str) -> dict[str, Any] | None:
    try:
        con = sqlite3.connect(net.root / "bank" / "node.sqlite", timeout=1)
    except sqlite3.Error:
        return None
    con.row_factory = sqlite3.Row
    try:
        row = con.execute("SELECT * FROM sched_slots WHERE task = ?", (task,)).fetchone()
        return None if row is None else dict(row)
    except sqlite3.Error:
        return None
    finally:
        con.close()


def _port_free(net: Network, org: str, timeout: float = 30.0) -> None:
    """Wait until the killed node's port can be bound again (its process is gone with its sockets)."""
    port = int(net.url(org).rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    held = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
                    raise AssertionError(f"port {port} still taken:\n{held}") from None
        time.sleep(0.2)


def test_a_requesters_node_killed_during_a_scheduled_run_neither_duplicates_nor_loses_it(
    net: Network, world: dict[str, Any]
) -> None:
    analyst, grants = world["analyst"], world["grants"]
    at = int(time.time() * 1000) + 4_000
    task = sdk.submit_task(
        analyst.ledger,
        analyst.identity,
        engine="psi",
        inputs=[
            {"dataset": CUSTOMERS, "grant": grants[CUSTOMERS], "columns": ["phone"]},
            {"dataset": SUBSCRIBERS, "grant": grants[SUBSCRIBERS], "columns": ["phone"]},
        ],
        code_digest=hashlib.sha256(b"ecdh-psi-x25519/v1").hexdigest(),
        schedule={"kind": "at", "at": at},
    ).tx_id
    net.sync()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the node recorded the slot's run.start: kill it now
        row = _slot_row(net, task)
        if row is not None and row["state"] == "started":
            break
        time.sleep(0.01)
    else:
        raise AssertionError("the bank's node never started the slot")
    net.kill("bank", signal.SIGKILL)
    power = net.client("power")  # read the ledger through another org's node meanwhile
    time.sleep(0.5)
    runs = power.query(f"task/{task}")["runs"]
    assert len(runs) == 1 and power.query(f"run/{runs[0]}")["status"] == "running"  # killed mid-run

    _port_free(net, "bank")
    net.start("bank")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        slots = task_slots(analyst, task)
        if slots and slots[0]["state"] not in ("queued", "waiting for peers", "running"):
            break
        time.sleep(0.2)
    (slot,) = task_slots(analyst, task)
    net.sync()
    assert analyst.query(f"task/{task}")["runs"] == runs  # no second run for the slot
    run = analyst.query(f"run/{runs[0]}")
    assert run["status"] == "failed" and "INTERRUPTED" in run["reason"]  # reported, not lost
    assert slot["state"] == "failed" and slot["run"] == runs[0] and "INTERRUPTED" in slot["reason"]


def _psi_rows(net: Network, org: str, run: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(net.root / org / "node.sqlite", timeout=5)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM node_psi_runs WHERE run = ?", (run,))]
    finally:
        con.close()


def test_a_run_cancelled_while_running_stops_every_party_and_leaves_no_result(
    net: Network, world: dict[str, Any]
) -> None:
    analyst, grants = world["analyst"], world["grants"]
    task = submit_psi_task(
        analyst,
        mine=(CUSTOMERS, grants[CUSTOMERS], "phone"),
        theirs=(SUBSCRIBERS, grants[SUBSCRIBERS], "phone"),
    )
    net.sync()
    outcome: list[BaseException | dict[str, Any]] = []

    def drive() -> None:
        try:
            outcome.append(run_psi_task(analyst, task))
        except BaseException as exc:
            outcome.append(exc)

    th = threading.Thread(target=drive, daemon=True)
    th.start()
    deadline = time.monotonic() + 60
    run = None
    while time.monotonic() < deadline:  # the run started and both nodes claimed their inputs for it
        runs = analyst.query(f"task/{task}")["runs"]
        if runs and _psi_rows(net, "bank", runs[0]) and _psi_rows(net, "power", runs[0]):
            run = runs[0]
            break
        time.sleep(0.02)
    assert run is not None, "the PSI run never started on both nodes"
    started = time.monotonic()
    cancel_run(analyst, run, "the campaign was called off")
    th.join(60)
    assert time.monotonic() - started < 30
    (result,) = outcome
    assert isinstance(result, PsiRunFailed) and "cancelled" in result.message, result  # not a success
    net.sync()
    rec = analyst.query(f"run/{run}")
    assert rec["status"] == "cancelled" and rec["reason"] == "the campaign was called off"
    with pytest.raises(ApiCallError):
        analyst.query(f"release/{run}")  # nothing to release
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = {org: _psi_rows(net, org, run)[0] for org in ("bank", "power")}
        if all(r["status"] == "failed" for r in rows.values()):
            break
        time.sleep(0.1)
    for org, r in rows.items():  # every party stopped; no intersection kept anywhere
        assert r["status"] == "failed" and r["ids"] in (None, "null") and r["output_digest"] is None, (org, r)
