"""``confide client`` tee commands end to end: submit, run, review, approve, fetch, verify provenance.

A real network (orderer + bank, tax, power nodes as processes, https). Set-up the CLI has no
command for (units, members, datasets, grants) goes through the SDK; then every step is a CLI
command run with the key of the person who would run it. Tests run in order on one network.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from confide.crypto import Identity
from confide.interfaces import sdk
from confide.interfaces.cli import app
from confide.interfaces.client import Client

sys.path.insert(0, str(Path(__file__).parent / "node"))
from netfixture import Network, start_network

pytestmark = pytest.mark.slow
N = 40
CODES = [f"91350100M00030{i:04d}" for i in range(N)]
TAX, POWER = "tax/collection/filings", "power/service/meters"
COLUMNS = {TAX: ["credit_code", "revenue"], POWER: ["credit_code", "kwh"]}
SQL = (
    "SELECT CASE WHEN f.revenue >= 1020 THEN 'high' ELSE 'low' END AS tier, count(*) AS group_size, "
    "CAST(sum(m.kwh) AS BIGINT) AS kwh FROM filings f JOIN meters m USING (credit_code) GROUP BY 1 ORDER BY 1"
)
PER_FIRM = "SELECT credit_code, 1 AS group_size FROM meters ORDER BY 1"  # below power's min group size
runner = CliRunner()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("cli-tee") / "consortium"
    n = start_network(root)
    os.environ["CONFIDE_CA_BUNDLE"] = str(n.bundle)
    yield n
    os.environ.pop("CONFIDE_CA_BUNDLE", None)
    n.stop_all()


@pytest.fixture(scope="module")
def world(net: Network) -> dict[str, Any]:
    """Owners at tax and power with a dataset each (power: min group size 5), a bank analyst with grants."""
    tax = ["credit_code,revenue,name"] + [f"{c},{1000 + i},Firm {i}" for i, c in enumerate(CODES)]
    power = ["credit_code,kwh"] + [f"{c},{50 + i}" for i, c in enumerate(CODES)]
    (net.root / "tax" / "data" / "filings.csv").write_text("\n".join(tax) + "\n")
    (net.root / "power" / "data" / "meters.csv").write_text("\n".join(power) + "\n")
    keys = net.root / "cli-keys"
    w: dict[str, Any] = {"keys": {}, "grants": {}}
    owners: dict[str, Identity] = {}
    for org, unit, name, policy in (
        ("tax", "collection", "filings", {}),
        ("power", "service", "meters", {"min_group_size": 5}),
    ):
        admin = net.client(org)
        sdk.create_unit(admin.ledger, admin.identity, unit, unit.title())
        owner = Identity.generate()
        sdk.add_member(
            admin.ledger, admin.identity, owner, name=f"{org} owner", roles=["unit_owner"], unit=unit
        )
        w["keys"][org] = str(owner.save(keys / f"{org}-owner.pem"))
        owners[org] = owner
        c = Client(net.url(org), owner, ca_bundle=net.bundle)
        source = {"type": "csv", "path": f"{name}.csv"}
        c.register_dataset(org=org, unit=unit, name=name, title=name.title(), source=source, **policy)
    analyst = Identity.generate()
    bank = net.client("bank")
    sdk.add_member(bank.ledger, bank.identity, analyst, name="analyst", roles=["analyst"])
    w["keys"]["bank"] = str(analyst.save(keys / "analyst.pem"))
    a = Client(net.url("bank"), analyst, ca_bundle=net.bundle)
    for dataset, columns in COLUMNS.items():
        grant = sdk.apply_for(
            a.ledger, analyst, dataset=dataset, purpose="energy use by revenue tier", columns=columns,
            engines=["tee"], max_uses=10, expires_at=int(time.time() * 1000) + 86_400_000,
        ).tx_id  # fmt: skip
        org = dataset.split("/")[0]
        owner_client = Client(net.url(org), owners[org], ca_bundle=net.bundle)
        sdk.approve(owner_client.ledger, owners[org], grant, "unit")
        w["grants"][dataset] = grant
    net.sync()
    return w


def cli(*args: str, code: int = 0) -> str:
    base: dict[str, str | None] = {"CONFIDE_NODE_URL": None, "CONFIDE_KEY": None, "CONFIDE_SUITE": None}
    result = runner.invoke(app, ["client", *args], env=base)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def as_(net: Network, w: dict[str, Any], org: str) -> list[str]:
    """The CLI options of ``org``'s person (bank: the analyst; tax, power: the dataset owner)."""
    return ["--node", net.url(org), "--key", w["keys"][org]]


def inputs(w: dict[str, Any], datasets: tuple[str, ...] = (TAX, POWER)) -> list[str]:
    out = []
    for d in datasets:
        out += ["--input", f"{d}={w['grants'][d]}:{','.join(COLUMNS[d])}"]
    return out


def submit(net: Network, w: dict[str, Any], *args: str) -> tuple[str, str]:
    out = cli("task-submit", *args, *as_(net, w, "bank"))
    found = re.search(r"task ([0-9a-f]{64}) submitted in block (\d+)", out)
    assert found, out
    return found.group(1), found.group(2)


def tee_run(net: Network, w: dict[str, Any], task: str, height: str) -> str:
    out = cli("tee-run", task, "--min-height", height, *as_(net, w, "bank"))
    found = re.search(r"run ([0-9a-f]{64}) finished in block", out)
    assert found, out
    assert re.search(r"output digest [0-9a-f]{64}", out) and "group_size" in out, out
    return found.group(1)


def test_submit_run_review_approve_fetch_and_verify(
    net: Network, world: dict[str, Any], tmp_path: Path
) -> None:
    w = world
    task, height = submit(net, w, *inputs(w), "--sql", SQL, "--param", "year=2025")
    run = tee_run(net, w, task, height)
    net.sync()

    early = cli("result", run, "--out", str(tmp_path / "early.parquet"), *as_(net, w, "bank"), code=1)
    assert "NOT_RELEASED" in early and TAX in early and POWER in early
    assert f"release-approve {run}" in early
    assert not (tmp_path / "early.parquet").exists()

    for org, dataset in (("tax", TAX), ("power", POWER)):
        seen = cli("release-preview", run, dataset, *as_(net, w, org))
        assert "match" in seen and "group_size" in seen and "GROUP BY 1" in seen
        p = json.loads(cli("release-preview", run, dataset, "--json", *as_(net, w, org)))
        assert p["digests_match"] is True and p["preview"]["rows"] == 2 and p["code"] == SQL
        out = cli("release-approve", run, dataset, *as_(net, w, org))
        assert f"approved the release of {dataset}" in out
        net.sync()
    assert "released" in out

    cli("result", run, "--out", str(tmp_path / "x.parquet"), *as_(net, w, "bank"))
    rows = pq.read_table(tmp_path / "x.parquet").to_pylist()
    high = [i for i in range(N) if 1000 + i >= 1020]
    assert rows == [
        {"tier": "high", "group_size": len(high), "kwh": sum(50 + i for i in high)},
        {"tier": "low", "group_size": N - len(high), "kwh": sum(50 + i for i in range(N) if i not in high)},
    ]
    csv_out = cli("result", run, "--out", str(tmp_path / "x.csv"), *as_(net, w, "bank"))
    assert "wrote 2 rows" in csv_out and pa_csv.read_csv(tmp_path / "x.csv").num_rows == 2

    report = cli("provenance", run, *as_(net, w, "tax"))
    assert "verified" in report and "FAIL" not in report and "run.start" in report
    assert json.loads(cli("provenance", run, "--json", *as_(net, w, "power")))["verified"] is True

    # the same task again; this time the power company says no
    run2 = tee_run(net, w, task, height)
    net.sync()
    out = cli("release-reject", run2, POWER, "--reason", "not this quarter", *as_(net, w, "power"))
    assert "rejected" in out
    net.sync()
    refused = cli("result", run2, "--out", str(tmp_path / "y.csv"), *as_(net, w, "bank"), code=1)
    assert "NOT_RELEASED" in refused and "never released" in refused
    failed = cli("provenance", run2, *as_(net, w, "tax"), code=1)
    assert "FAIL" in failed and "NOT verified" in failed


def test_a_failing_run_is_reported_with_its_code(net: Network, world: dict[str, Any]) -> None:
    task, height = submit(net, world, *inputs(world, (POWER,)), "--sql", PER_FIRM)
    out = cli("tee-run", task, "--min-height", height, *as_(net, world, "bank"), code=1)
    assert "ENCLAVE_BELOW_MIN_GROUP" in out and "group_size" in out and "recorded failed" in out


def test_sql_file_function_and_json(net: Network, world: dict[str, Any], tmp_path: Path) -> None:
    sql = tmp_path / "q.sql"
    sql.write_text(SQL)
    submit(net, world, *inputs(world), "--sql-file", str(sql))
    out = cli("task-submit", *inputs(world), "--function", "row_count", "--json", *as_(net, world, "bank"))
    t = json.loads(out)
    assert re.fullmatch(r"[0-9a-f]{64}", t["task"]) and len(t["params"]["recipient"]) == 64


def test_bad_input_is_a_clear_error(net: Network, world: dict[str, Any], tmp_path: Path) -> None:
    me = as_(net, world, "bank")
    grant = world["grants"][TAX]
    for bad, says in (
        ("tax/collection/filings", "DATASET=GRANT:COLUMNS"),
        (f"tax/collection/filings={grant}", "DATASET=GRANT:COLUMNS"),
        (f"filings={grant}:revenue", "org/unit/name"),
        ("tax/collection/filings=abc:revenue", "64 hex"),
        (f"tax/collection/filings={grant}:", "no columns"),
    ):
        out = cli("task-submit", "--input", bad, "--sql", "SELECT 1", *me, code=1)
        assert says in out and "what to do" in out, out
    out = cli("task-submit", *inputs(world), "--function", "nope", *me, code=1)
    assert "unknown enclave function" in out and "credit_score" in out and "row_count" in out
    out = cli("task-submit", *inputs(world), "--sql", "SELECT 1", "--function", "row_count", *me, code=1)
    assert "exactly one of" in out
    out = cli("task-submit", *inputs(world), "--sql", "SELECT 1", "--param", "recipient=ab", *me, code=1)
    assert "set for you" in out
    out = cli("result", "0" * 64, "--out", str(tmp_path / "x.txt"), *me, code=1)
    assert ".txt" in out and ".parquet or .csv" in out
    out = cli("tee-run", "0" * 64, *me, code=1)
    assert "NOT_FOUND" in out and "task id" in out
