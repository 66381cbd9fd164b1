"""``confide client ...`` end to end against a real network (orderer + 3 org nodes as processes).

One network for the module; tests run in order and build on each other's state
(``world`` carries ids between them). Setup the client CLI has no command for
(units, members) goes through ``confide.interfaces.sdk`` over ``Client.ledger``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from confide.crypto import Identity
from confide.interfaces import sdk
from confide.interfaces.cli import app

sys.path.insert(0, str(Path(__file__).parent / "node"))
from netfixture import Network, start_network

pytestmark = pytest.mark.slow
CANARY = "CANARY-51c0de-tax-secret-cell"
CODES = [f"91350100M00020{i:04d}" for i in range(120)]
REVENUES = [str(8_734_001 + 13 * i) for i in range(120)]  # outside the synthetic int ranges
DATASET = "tax/collection/filings"
runner = CliRunner()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cli-net") / "consortium"
    n = start_network(root)
    os.environ["CONFIDE_CA_BUNDLE"] = str(n.bundle)  # the nodes speak https with ledger-key certificates
    yield n
    os.environ.pop("CONFIDE_CA_BUNDLE", None)
    n.stop_all()


@pytest.fixture(scope="module")
def world(net: Network) -> dict[str, Any]:
    rows = ["credit_code,year,revenue,notes"]
    rows += [f"{c},2025,{r},ordinary" for c, r in zip(CODES, REVENUES, strict=True)]
    rows.append(f"91350100M000209999,2025,8000000,{CANARY}")
    (net.root / "tax" / "data" / "filings.csv").write_text("\n".join(rows) + "\n")
    keys = net.root / "cli-keys"
    admin = net.client("tax")
    sdk.create_unit(admin.ledger, admin.identity, "collection", "Collection")
    owner = Identity.generate()
    sdk.add_member(
        admin.ledger, admin.identity, owner, name="tax owner", roles=["unit_owner"], unit="collection"
    )
    stranger = Identity.generate()
    net.sync()  # every node has applied the set-up before the CLI reads
    return {
        "tax_owner": str(owner.save(keys / "tax-owner.pem")),
        "tax_admin": str(net.root / "tax" / "keys" / "admin.pem"),
        "bank_admin": str(net.root / "bank" / "keys" / "admin.pem"),
        "stranger": str(stranger.save(keys / "stranger.pem")),
    }


def cli(*args: str, code: int = 0, env: dict[str, str | None] | None = None) -> str:
    # Never pick up a developer's CONFIDE_* settings.
    base: dict[str, str | None] = {"CONFIDE_NODE_URL": None, "CONFIDE_KEY": None, "CONFIDE_SUITE": None}
    result = runner.invoke(app, ["client", *args], env={**base, **(env or {})})
    assert result.exit_code == code, result.output
    return result.output


def as_(net: Network, w: dict[str, Any], org: str, key: str) -> list[str]:
    return ["--node", net.url(org), "--key", w[key]]


def test_status_from_environment(net: Network, world: dict[str, Any]) -> None:
    out = cli("status", env={"CONFIDE_NODE_URL": net.url("tax"), "CONFIDE_KEY": world["tax_owner"]})
    assert "net-test" in out and "tax owner" in out and "unit_owner" in out
    s = json.loads(cli("status", "--json", *as_(net, world, "bank", "bank_admin")))
    assert s["org"] == "bank" and s["you"]["roles"] == ["org_admin"] and s["height"] > 0


def test_register_csv_shows_profile_and_block(net: Network, world: dict[str, Any]) -> None:
    out = cli(
        "register", "--unit", "collection", "--name", "filings", "--title", "Tax filings",
        "--csv", "filings.csv", *as_(net, world, "tax", "tax_owner"),
    )  # fmt: skip
    assert f"registered {DATASET} in block" in out
    assert "121" in out and "credit_code, year, revenue, notes" in out
    digest = re.search(r"digest\s+([0-9a-f]{64})", out)
    assert digest, out
    ds = json.loads(cli("show", DATASET, "--json", *as_(net, world, "tax", "tax_admin")))
    v = ds["versions"][-1]
    assert v["row_count"] == 121 and v["content_digest"] == digest.group(1)
    assert DATASET in cli("catalog", *as_(net, world, "tax", "tax_admin"))
    assert "content digest" in cli("show", DATASET, *as_(net, world, "tax", "tax_admin"))


def test_apply_approve_and_check_use(net: Network, world: dict[str, Any]) -> None:
    out = cli(
        "apply", DATASET, "--purpose", "credit scoring", "--columns", "credit_code,revenue",
        "--engines", "tee", "--days", "30", "--max-uses", "2", *as_(net, world, "bank", "bank_admin"),
    )  # fmt: skip
    found = re.search(r"application ([0-9a-f]{64}) submitted", out)
    assert found, out
    app_id = world["grant"] = found.group(1)
    out = cli("approve", app_id, "--level", "unit", *as_(net, world, "tax", "tax_owner"))
    assert "now approved" in out
    height = re.search(r"in block (\d+)", out)
    assert height, out
    world["height"] = height.group(1)
    listing = ["applications", "--status", "approved", "--min-height", world["height"]]
    apps = json.loads(cli(*listing, "--json", *as_(net, world, "bank", "bank_admin")))
    assert [a["id"] for a in apps] == [app_id] and apps[0]["uses_left"] == 2
    table = cli("applications", "--status", "approved", *as_(net, world, "bank", "bank_admin"))
    assert app_id[:16] in table and "approved" in table
    use = ["check-use", "--dataset", DATASET, "--grant", app_id, "--engine", "tee"]
    ok = cli(*use, "--columns", "credit_code,revenue", *as_(net, world, "tax", "bank_admin"))
    assert "allowed" in ok and "2 uses left" in ok
    denied = cli(*use, "--columns", "credit_code,notes", *as_(net, world, "tax", "bank_admin"), code=1)
    assert "denied" in denied and "outside the grant" in denied and "notes" in denied
    elsewhere = cli(*use, "--columns", "revenue", *as_(net, world, "bank", "bank_admin"), code=1)
    assert "not to this node" in elsewhere and "owns the dataset" in elsewhere


def test_preview_is_synthetic(net: Network, world: dict[str, Any]) -> None:
    out = cli("preview", DATASET, "--rows", "20", *as_(net, world, "bank", "bank_admin"))
    assert "synthetic" in out.lower() and "not real" in out
    for real in [CANARY, "ordinary", *CODES, *REVENUES]:
        assert real not in out
    p = json.loads(cli("preview", DATASET, "--json", *as_(net, world, "bank", "bank_admin")))
    assert p["synthetic"] is True and len(p["rows"]) == 5 and CANARY not in json.dumps(p)


def test_reject_revoke_and_audit(net: Network, world: dict[str, Any]) -> None:
    out = cli(
        "apply", DATASET, "--purpose", "curiosity", "--columns", "notes",
        *as_(net, world, "bank", "bank_admin"),
    )  # fmt: skip
    found = re.search(r"application ([0-9a-f]{64})", out)
    assert found, out
    cli("reject", found.group(1), "--reason", "no need", *as_(net, world, "tax", "tax_owner"))
    rejected = json.loads(
        cli("applications", "--status", "rejected", "--json", *as_(net, world, "tax", "tax_owner"))
    )
    assert [a["id"] for a in rejected] == [found.group(1)]
    assert "revoked in block" in cli(
        "revoke", world["grant"], "--reason", "audit finding", *as_(net, world, "tax", "tax_owner")
    )
    denied = cli(
        "check-use", "--dataset", DATASET, "--grant", world["grant"], "--columns", "revenue", "--json",
        *as_(net, world, "tax", "bank_admin"), code=1,
    )  # fmt: skip
    assert json.loads(denied) == {"allowed": False, "reason": "grant is revoked"}
    audit = json.loads(cli("audit", "--json", *as_(net, world, "tax", "tax_admin")))
    assert {"application.revoke", "application.reject", "dataset.register"} <= {r["type"] for r in audit}
    assert "application.revoke" in cli("audit", *as_(net, world, "tax", "tax_admin"))


def test_refusals_and_api_errors_are_one_line(net: Network, world: dict[str, Any]) -> None:
    out = cli("approve", world["grant"], *as_(net, world, "bank", "bank_admin"), code=1)
    assert "refused" in out and "Traceback" not in out
    out = cli("register", "--unit", "collection", "--name", "x", "--title", "X", "--csv", "missing.csv",
              *as_(net, world, "tax", "tax_owner"), code=1)  # fmt: skip
    assert "BAD_SOURCE" in out and "data folder" in out
    out = cli("show", "tax/collection/nothing", *as_(net, world, "tax", "tax_owner"), code=1)
    assert "NOT_FOUND" in out


def test_wrong_key_unreachable_and_missing_options(net: Network, world: dict[str, Any]) -> None:
    out = cli("status", *as_(net, world, "tax", "stranger"), code=1)
    assert "UNAUTHENTICATED" in out and "Traceback" not in out
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    out = cli("catalog", "--node", dead, "--key", world["tax_admin"], code=1)
    assert dead in out and "confide node start" in out
    out = cli("status", "--key", world["tax_admin"], code=1)
    assert "no node URL" in out and "CONFIDE_NODE_URL" in out
    out = cli("status", "--node", net.url("tax"), code=1)
    assert "no signing key" in out and "CONFIDE_KEY" in out
    out = cli(
        "register", "--unit", "u", "--name", "n", "--title", "t", *as_(net, world, "tax", "tax_owner"), code=1
    )
    assert "exactly one source" in out
