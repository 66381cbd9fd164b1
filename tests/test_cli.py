"""The ``confide`` command line end to end, on a real workspace on disk."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from confide.interfaces.cli import app

runner = CliRunner()


def run(*args: str, ok: bool = True) -> str:
    result = runner.invoke(app, list(args))
    out = result.output
    if ok:
        assert result.exit_code == 0, out
    else:
        assert result.exit_code == 1, out
    return out


def test_help_reads_well() -> None:
    out = run("--help")
    for word in ("ledger", "catalog", "apply", "approve", "revoke", "audit", "bench", "demo"):
        assert word in out
    assert "trusted data collaboration" in out.lower()


def test_full_workflow_through_cli(tmp_path: Path) -> None:
    d = str(tmp_path / "led")
    run("ledger", "init", "--dir", d)
    run("catalog", "unit-create", "filings", "Filings Dept", "--as", "tax-admin", "--dir", d)
    owner_key = str(tmp_path / "owner.pem")
    run(
        "member",
        "add",
        "--name",
        "Tax owner",
        "--role",
        "unit_owner",
        "--unit",
        "filings",
        "--key-out",
        owner_key,
        "--as",
        "tax-admin",
        "--dir",
        d,
    )
    data = tmp_path / "filings.csv"
    data.write_text("credit_code,revenue\n91350100M000100Y43,100\n")
    run(
        "catalog",
        "register",
        "--unit",
        "filings",
        "--name",
        "annual",
        "--title",
        "Annual filings",
        "--schema",
        "credit_code:string,revenue:int64",
        "--rows",
        "1",
        "--file",
        str(data),
        "--as",
        owner_key,
        "--dir",
        d,
    )
    shown = json.loads(run("catalog", "show", "tax/filings/annual", "--dir", d))
    assert shown["versions"][0]["row_count"] == 1 and "91350100M000100Y43" not in json.dumps(shown)
    out = run(
        "apply",
        "tax/filings/annual",
        "--purpose",
        "credit check",
        "--columns",
        "credit_code",
        "--as",
        "bank-admin",
        "--dir",
        d,
    )
    app_id = re.search(r"application ([0-9a-f]{64})", out).group(1)  # type: ignore[union-attr]
    run("approve", app_id, "--as", owner_key, "--dir", d)
    listing = run("applications", "--dir", d)
    assert "approved" in listing
    assert "Tax owner" in run("audit", "--dir", d)
    assert "OK" in run("ledger", "verify", "--dir", d)
    status = json.loads(run("ledger", "status", "--json", "--dir", d))
    replica = run("ledger", "replicate", "--to", str(tmp_path / "replica.sqlite"), "--dir", d)
    assert status["state_root"] in replica.replace("\n", "")
    tx = json.loads(run("ledger", "show", app_id, "--dir", d))
    assert tx["body"]["type"] == "application.submit" and tx["proof"]["tx_id"] == app_id
    assert "tax-" not in run("ledger", "blocks", "--dir", d)  # lists hashes, never keys


def test_refusal_is_clear_and_changes_nothing(tmp_path: Path) -> None:
    d = str(tmp_path / "led")
    run("ledger", "init", "--dir", d)
    before = json.loads(run("ledger", "status", "--json", "--dir", d))
    out = run(
        "apply",
        "tax/none/none",
        "--purpose",
        "x",
        "--columns",
        "a",
        "--as",
        "bank-admin",
        "--dir",
        d,
        ok=False,
    )
    assert "NOT_FOUND" in out and "nothing was changed" in out
    after = json.loads(run("ledger", "status", "--json", "--dir", d))
    assert before == after


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    out = run("ledger", "status", "--dir", str(tmp_path / "missing"), ok=False)
    assert "confide ledger init" in out
    d = str(tmp_path / "led")
    run("ledger", "init", "--dir", d)
    assert "already holds a ledger" in run("ledger", "init", "--dir", d, ok=False)
    assert "not id:Name" in run("ledger", "init", "--dir", str(tmp_path / "x"), "--org", "bank", ok=False)
    bad_key = tmp_path / "led" / "keys" / "bank-admin.pem"
    bad_key.chmod(0o644)
    assert "chmod 600" in run("catalog", "unit-create", "u", "U", "--as", "bank-admin", "--dir", d, ok=False)


def test_gm_suite_ledger(tmp_path: Path) -> None:
    pytest.importorskip("tongsuopy")
    d = str(tmp_path / "gm")
    run("ledger", "init", "--dir", d, "--suite", "gm", "--chain-id", "gm-chain")
    run("catalog", "unit-create", "u", "Unit", "--as", "power-admin", "--dir", d)
    assert json.loads(run("ledger", "status", "--json", "--dir", d))["suite"] == "gm"
    assert "OK" in run("ledger", "verify", "--dir", d)


def test_demo_foundation(tmp_path: Path) -> None:
    out = run("demo", "foundation", "--workdir", str(tmp_path / "demo"))
    assert "roots match: True" in out and "'ledger verify': OK" in out
    assert "approved" in out and "tax/collection/filings" in out


@pytest.mark.slow
def test_bench_ledger_prints_json_last(tmp_path: Path) -> None:
    out = run("bench", "ledger", "--txs", "600", "--block-txs", "200", "--workdir", str(tmp_path))
    last = json.loads(out.strip().splitlines()[-1])
    assert last["committed_tx_per_s"] > 0 and last["verify_per_s"] > 0
    assert last["replica_state_root_matches"] is True and last["blocks"] == 3


@pytest.mark.slow
def test_demo_network(tmp_path: Path) -> None:
    out = run("demo", "network", "--workdir", str(tmp_path / "net"))
    assert "every node reports the same state root: True" in out
    assert "refused — columns outside the grant" in out and "stopping the orderer and the nodes" in out
    assert not [line for line in out.splitlines() if "Traceback" in line]
