"""Orderer + three org nodes as separate processes on loopback; the whole flow through the SDK.

One network per module (starting processes costs seconds); tests run in order
and build on each other's state where noted.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
from netfixture import Network, start_network

from confide.crypto import Identity
from confide.crypto.httpsig import sign_request
from confide.interfaces import sdk
from confide.interfaces.client import ApiCallError, Client
from confide.ledger import TxRefused

pytestmark = pytest.mark.slow
CANARY = "CANARY-7f3a9c-tax-secret-row"
DAY = 86_400_000


def _pg_databases() -> str:
    """Fresh PostgreSQL databases, one per org; returns a URL template with ``{org}``."""
    url = os.environ.get("CONFIDE_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail(
                "CONFIDE_TEST_PG_URL is not set: CI must run the nodes on PostgreSQL (make test starts it)"
            )
        pytest.skip('no PostgreSQL test server: run eval "$(scripts/test-postgres.sh)"')
    import psycopg

    tag = f"net_{uuid.uuid4().hex[:8]}"
    base, _, _ = url.rpartition("/")
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        for org in ("bank", "tax", "power"):
            conn.execute(f"CREATE DATABASE {tag}_{org}")
    return f"{base}/{tag}_{{org}}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def net(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    db = _pg_databases() if request.param == "postgresql" else None
    root = tmp_path_factory.mktemp(f"net-{request.param}") / "consortium"
    n = start_network(root, database_url=db)
    yield n
    n.stop_all()


@pytest.fixture(scope="module")
def world(net: Network) -> dict:
    """Units, owners, an analyst and two datasets registered from real files through connectors."""
    tax_data = net.root / "tax" / "data" / "filings.csv"
    rows = ["credit_code,year,revenue,notes"]
    rows += [f"91350100M00010{i:04d},2025,{1000 + i},ordinary" for i in range(200)]
    rows.append(f"91350100M000109999,2025,5,{CANARY}")
    tax_data.write_text("\n".join(rows) + "\n")
    (net.root / "power" / "data" / "usage.csv").write_text("credit_code,kwh\n91350100M000100000,42\n")
    w: dict = {"owners": {}}
    for org, unit in (("tax", "collection"), ("power", "service")):
        admin = net.client(org)
        sdk.create_unit(admin.ledger, admin.identity, unit, unit.title())
        owner = Identity.generate()
        sdk.add_member(
            admin.ledger, admin.identity, owner, name=f"{org} owner", roles=["unit_owner"], unit=unit
        )
        w["owners"][org] = Client(net.url(org), owner, ca_bundle=net.bundle)
    analyst = Identity.generate()
    bank = net.client("bank")
    sdk.add_member(bank.ledger, bank.identity, analyst, name="analyst", roles=["analyst"])
    w["analyst"] = Client(net.url("bank"), analyst, ca_bundle=net.bundle)
    w["tax_reg"] = w["owners"]["tax"].register_dataset(
        org="tax",
        unit="collection",
        name="filings",
        title="Filings",
        source={"type": "csv", "path": "filings.csv"},
        approval_levels=["unit", "org"],
    )
    w["owners"]["power"].register_dataset(
        org="power", unit="service", name="usage", title="Usage", source={"type": "csv", "path": "usage.csv"}
    )
    net.sync()  # every node has applied the set-up before the tests read
    return w


def _apply(w: dict, **over: object) -> str:
    args = {
        "dataset": "tax/collection/filings",
        "purpose": "credit scoring",
        "columns": ["credit_code", "revenue"],
        "engines": ["tee"],
        "expires_at": int(time.time() * 1000) + DAY,
        "max_uses": 3,
        **over,
    }
    return sdk.apply_for(w["analyst"].ledger, w["analyst"].identity, **args).tx_id  # type: ignore[arg-type]


def test_catalog_from_real_files_has_metadata_only(net: Network, world: dict) -> None:
    ds = world["analyst"].query("dataset/tax/collection/filings")
    v = ds["versions"][-1]
    assert v["row_count"] == 201
    assert [c["name"] for c in v["schema"]] == ["credit_code", "year", "revenue", "notes"]
    preview = world["analyst"].preview("tax/collection/filings")
    assert preview["synthetic"] is True and CANARY not in json.dumps(preview)


def test_full_flow_and_enforcement(net: Network, world: dict) -> None:
    app = _apply(world)
    tax_owner, tax_admin = world["owners"]["tax"], net.client("tax")
    sdk.approve(tax_owner.ledger, tax_owner.identity, app, "unit")
    r = sdk.approve(tax_admin.ledger, tax_admin.identity, app, "org")
    assert world["analyst"].query(f"application/{app}", min_height=r.height)["status"] == "approved"
    with pytest.raises(ApiCallError) as info:  # the bank's node holds no tax data: it cannot decide
        world["analyst"].check_use(
            dataset="tax/collection/filings", grant=app, engine="tee", columns=["year"]
        )
    assert "not to this node" in info.value.message
    tax_node = Client(
        net.url("tax"), world["analyst"].identity, ca_bundle=net.bundle
    )  # the owner's node is the enforcer
    tax_node.last_height = r.height
    ok = tax_node.check_use(
        dataset="tax/collection/filings", grant=app, engine="tee", columns=["credit_code"]
    )
    assert ok["allowed"] is True and ok["uses_left"] == 3
    with pytest.raises(ApiCallError) as info:
        tax_node.check_use(dataset="tax/collection/filings", grant=app, engine="tee", columns=["notes"])
    assert info.value.status == 403 and "outside the grant" in info.value.message
    with pytest.raises(ApiCallError) as info:
        tax_node.check_use(dataset="tax/collection/filings", grant=app, engine="mpc", columns=["credit_code"])
    assert info.value.code == "USE_DENIED"
    world["grant"] = app
    world["tax_node"] = tax_node


def test_same_state_root_on_every_node(net: Network, world: dict) -> None:
    head = httpx.get(net.url("orderer") + "/v1/health", verify=net.verify()).json()["height"]
    for org in ("bank", "tax", "power"):
        net.client(org).query("consortium", min_height=head)
    roots = {org: net.client(org).status() for org in ("bank", "tax", "power")}
    heights = {s["height"] for s in roots.values()}
    assert len(heights) == 1, roots
    assert len({s["state_root"] for s in roots.values()}) == 1


def test_request_authentication_refusals(net: Network, world: dict) -> None:
    url = net.url("tax") + "/v1/status"
    assert httpx.get(url, verify=net.verify()).status_code == 401  # unsigned
    stranger = Identity.generate()
    assert (
        httpx.get(
            url, verify=net.verify(), headers=sign_request(stranger, "GET", "/v1/status", "", b"")
        ).status_code
        == 401
    )
    admin = net.client("tax").identity
    headers = sign_request(admin, "GET", "/v1/status", "", b"")
    assert httpx.get(url, verify=net.verify(), headers=headers).status_code == 200
    replay = httpx.get(url, verify=net.verify(), headers=headers)
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "UNAUTHENTICATED"
    tampered = sign_request(admin, "POST", "/v1/sources", "", b'{"a":1}')
    resp = httpx.post(
        net.url("tax") + "/v1/sources", verify=net.verify(), content=b'{"a":2}', headers=tampered
    )
    assert resp.status_code == 401


def test_authorization_refusals(net: Network, world: dict) -> None:
    bank_admin_on_tax = Client(net.url("tax"), net.client("bank").identity, ca_bundle=net.bundle)
    with pytest.raises(ApiCallError) as info:
        bank_admin_on_tax.bind_source("tax/collection/x", {"type": "csv", "path": "filings.csv"})
    assert info.value.code == "WRONG_ORG"
    analyst_on_bank = world["analyst"]
    with pytest.raises(ApiCallError) as info:
        analyst_on_bank.bind_source("bank/x/y", {"type": "csv", "path": "a.csv"})
    assert info.value.code == "WRONG_ROLE"
    with pytest.raises(TxRefused) as refused:
        _apply(world, dataset="tax/collection/nothing")
    assert refused.value.name == "NOT_FOUND"
    app = _apply(world)
    power_owner = world["owners"]["power"]
    with pytest.raises(TxRefused) as refused:
        sdk.approve(power_owner.ledger, power_owner.identity, app, "unit")
    assert refused.value.name == "FORBIDDEN"


def test_bad_sources_refused(net: Network, world: dict) -> None:
    tax_owner = world["owners"]["tax"]
    (net.root / "tax" / "data" / "broken.csv").write_text("a,b\n1,2\n3,4,5\n")
    (net.root / "tax" / "data" / "broken.jsonl").write_text('{"a": 1}\n{"a": 2,,}\n')
    (net.root / "tax" / "data" / "empty.csv").write_text("")
    cases = [
        ({"type": "csv", "path": "broken.csv"}, "BAD_SOURCE"),
        ({"type": "csv", "path": "missing.csv"}, "BAD_SOURCE"),
        ({"type": "jsonl", "path": "broken.jsonl"}, "BAD_SOURCE"),
        ({"type": "csv", "path": "empty.csv"}, "BAD_SOURCE"),
        ({"type": "sql", "url": "sqlite:////etc/passwd", "table": "t"}, "OUTSIDE_DATA_DIR"),
        ({"type": "csv", "path": "../../orderer/orderer.json"}, "OUTSIDE_DATA_DIR"),
        ({"type": "sql", "url": "postgresql+psycopg://nobody@127.0.0.1:1/none", "table": "t"}, "BAD_SOURCE"),
        ({"type": "teleport"}, "BAD_SOURCE"),
    ]
    height = httpx.get(net.url("orderer") + "/v1/health", verify=net.verify()).json()["height"]
    for spec, code in cases:
        with pytest.raises(ApiCallError) as info:
            tax_owner.bind_source("tax/collection/bad", spec)
        assert info.value.code == code, (spec, info.value)
    assert (
        httpx.get(net.url("orderer") + "/v1/health", verify=net.verify()).json()["height"] == height
    )  # nothing reached the ledger


def test_revoked_grant_is_refused_by_the_owner_node(net: Network, world: dict) -> None:
    tax_owner = world["owners"]["tax"]
    r = sdk.revoke(tax_owner.ledger, tax_owner.identity, world["grant"], "audit finding")
    world["tax_node"].last_height = r.height
    with pytest.raises(ApiCallError) as info:
        world["tax_node"].check_use(
            dataset="tax/collection/filings", grant=world["grant"], engine="tee", columns=["credit_code"]
        )
    assert info.value.code == "USE_DENIED" and "revoked" in info.value.message


def test_node_killed_mid_flow_catches_up(net: Network, world: dict) -> None:
    net.kill("power")  # SIGKILL
    bank = net.client("bank")
    for i in range(5):
        sdk.create_unit(bank.ledger, bank.identity, f"while-down-{i}", "Made while power was down")
    net.start("power")
    deadline = time.monotonic() + 20
    while net.health("power")["height"] != net.health("bank")["height"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert net.client("power").status()["state_root"] == bank.status()["state_root"]


def test_canary_never_leaves_the_tax_bureau(net: Network, world: dict) -> None:
    needle = CANARY.encode()
    suspects = [p for p in (net.root / "bank").rglob("*") if p.is_file()]
    suspects += [net.root / "bank.log", net.root / "power.log", net.root / "orderer.log"]
    suspects += [p for p in (net.root / "orderer").rglob("*") if p.is_file()]
    assert suspects
    for p in suspects:
        assert needle not in p.read_bytes(), f"canary found in {p}"
    for org in ("bank", "power"):
        assert CANARY not in _database_dump(net, org), f"canary found in {org}'s database"
    assert needle in (net.root / "tax" / "data" / "filings.csv").read_bytes()  # the test can see it


def _database_dump(net: Network, org: str) -> str:
    """Every row of every table in the org node's database, as text (SQLite or PostgreSQL)."""
    import sqlalchemy as sa

    from confide.node.config import load_node_config

    engine = sa.create_engine(load_node_config(net.root / org).database_url)
    parts = []
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                parts.append(repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)))
    engine.dispose()
    assert parts, f"{org}'s database is empty"
    return "\n".join(parts)


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def upstream() -> str:
    """A data service the power company runs behind its node (plain HTTP on loopback)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(
                {
                    "data": [
                        {
                            "credit_code": "91350100M000100000",
                            "score": 710,
                            "meter": {"kwh": 42},
                            "secret": CANARY,
                        },
                        {
                            "credit_code": "91350100M000100001",
                            "score": 640,
                            "meter": {"kwh": 7},
                            "secret": CANARY,
                        },
                    ]
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/records"
    server.shutdown()


def test_api_dataset_served_through_owner_node(net: Network, world: dict, upstream: str) -> None:
    power_owner = world["owners"]["power"]
    power_owner.register_dataset(
        org="power",
        unit="service",
        name="scores",
        title="Scores API",
        source={"type": "api", "url": upstream, "records": "data"},
    )
    app = _apply(
        world, dataset="power/service/scores", columns=["credit_code", "score"], engines=["api"], max_uses=2
    )
    r = sdk.approve(power_owner.ledger, power_owner.identity, app, "unit")
    via_power = Client(net.url("power"), world["analyst"].identity, ca_bundle=net.bundle)
    via_power.last_height = r.height
    out = via_power.call_service("power/service/scores", grant=app)
    assert out["records"][0] == {"credit_code": "91350100M000100000", "score": 710}
    assert CANARY not in json.dumps(out)  # ungranted fields never leave the owner's node
    usage = via_power.query(f"usage/{out['usage_tx']}", min_height=out["block"])
    assert (
        usage["response_digest"] == out["response_digest"]
        and usage["requester"] == world["analyst"].identity.key_id
    )
    with pytest.raises(ApiCallError) as info:
        via_power.call_service("power/service/scores", grant=app, fields=["secret"])
    assert info.value.code == "USE_DENIED"
    via_power.call_service("power/service/scores", grant=app)  # second and last use
    with pytest.raises(ApiCallError) as info:
        via_power.call_service("power/service/scores", grant=app)
    assert info.value.code == "USE_DENIED" and "exhausted" in info.value.message
    assert len(via_power.query("usages?dataset=power/service/scores")) == 2


def test_expired_grant_is_refused_by_the_owner_node(net: Network, world: dict) -> None:
    app = _apply(world, expires_at=int(time.time() * 1000) + 4000)
    tax_owner, tax_admin = world["owners"]["tax"], net.client("tax")
    sdk.approve(tax_owner.ledger, tax_owner.identity, app, "unit")
    r = sdk.approve(tax_admin.ledger, tax_admin.identity, app, "org")
    enforcer = Client(net.url("tax"), world["analyst"].identity, ca_bundle=net.bundle)
    enforcer.last_height = r.height
    time.sleep(4.2)  # let the grant run out; the owner's node judges expiry by its clock too
    with pytest.raises(ApiCallError) as info:
        enforcer.check_use(dataset="tax/collection/filings", grant=app, engine="tee", columns=["credit_code"])
    assert info.value.code == "USE_DENIED" and "expired" in info.value.message


def test_new_version_and_version_pinned_grants(net: Network, world: dict) -> None:
    tax_owner, tax_admin = world["owners"]["tax"], net.client("tax")
    pinned = _apply(world, versions=[1])
    for app in (pinned,):
        sdk.approve(tax_owner.ledger, tax_owner.identity, app, "unit")
        sdk.approve(tax_admin.ledger, tax_admin.identity, app, "org")
    path = net.root / "tax" / "data" / "filings.csv"
    path.write_text(path.read_text() + "91350100M000108888,2026,77,new row\n")
    r = tax_owner.publish_version(
        dataset="tax/collection/filings", source={"type": "csv", "path": "filings.csv"}
    )
    ds = world["analyst"].query("dataset/tax/collection/filings", min_height=r.height)
    assert [v["version"] for v in ds["versions"]] == [1, 2] and ds["versions"][1]["row_count"] == 202
    assert ds["versions"][0]["content_digest"] != ds["versions"][1]["content_digest"]
    grant = world["analyst"].query(f"application/{pinned}")
    assert grant["versions"] == [1]  # the grant says which versions it covers; run.start enforces it


def test_request_replayed_after_a_node_restart_is_refused(net: Network, world: dict) -> None:
    admin = net.client("tax").identity
    url = net.url("tax") + "/v1/status"
    headers = sign_request(admin, "GET", "/v1/status", "", b"")
    assert httpx.get(url, verify=net.verify(), headers=headers).status_code == 200
    net.kill("tax")  # SIGKILL: an in-memory nonce cache would forget
    net.start("tax")
    replay = httpx.get(url, verify=net.verify(), headers=headers)
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "UNAUTHENTICATED"
