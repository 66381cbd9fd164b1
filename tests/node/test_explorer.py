"""Block explorer and consortium view: the verification helper on a file chain, then the routes
on a three-org network of processes (one network for the module; tests build on each other)."""

from __future__ import annotations

import signal
import socket
import sqlite3
from contextlib import closing
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from netfixture import Network, start_network

from confide.crypto import Identity
from confide.interfaces import sdk
from confide.interfaces.client import ApiCallError
from confide.ledger.block import BlockHeader
from confide.ledger.embedded import ChainDB, Replica
from confide.node.block_check import checks_json, verify_stored_block
from confide.node.config import load_node_config
from confide.node.peer_health import probe_health, same_state
from factories import Consortium

slow = pytest.mark.slow
ALL_CHECKS = [
    "block_hash",
    "prev_link",
    "orderer_signature",
    "tx_root",
    "tx_ids",
    "tx_signatures",
    "verify_block",
]


# -- the verification helper, on a file chain (no processes) ------------------------------------


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Consortium, Path]:
    """Blocks 1..7 from Consortium.create, 8: tax dataset.register (signed by the tax owner)."""
    path = tmp_path / "chain.sqlite"
    c = Consortium.create(path)
    c.register_tax_dataset()
    return c, path


def _checks(c: Consortium, path: Path, height: int) -> dict[str, Any]:
    db = ChainDB(path, readonly=True)
    try:
        checks = verify_stored_block(Replica(db, c.genesis), height)
        assert checks is not None
        return checks_json(checks)
    finally:
        db.close()


def _failing(result: dict[str, Any]) -> set[str]:
    return {c["name"] for c in result["checks"] if not c["ok"]}


def _read(path: Path, sql: str, *args: Any) -> Any:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql, args).fetchone()[0]


def _edit(path: Path, sql: str, *args: Any) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        assert db.execute(sql, args).rowcount == 1


def test_every_block_of_an_untouched_chain_verifies(chain: tuple[Consortium, Path]) -> None:
    c, path = chain
    for h in range(9):
        result = _checks(c, path, h)
        assert result["ok"], (h, result)
        assert [x["name"] for x in result["checks"]] == ALL_CHECKS + (["genesis"] if h == 0 else [])
    db = ChainDB(path, readonly=True)
    assert verify_stored_block(Replica(db, c.genesis), 9) is None
    db.close()


def test_flipped_tx_signature_is_named(chain: tuple[Consortium, Path]) -> None:
    c, path = chain
    sig = _read(path, "SELECT sig FROM txs WHERE height=2 AND idx=0")
    _edit(path, "UPDATE txs SET sig=? WHERE height=2 AND idx=0", bytes([sig[0] ^ 1]) + sig[1:])
    result = _checks(c, path, 2)
    assert not result["ok"]
    assert _failing(result) == {"tx_signatures", "tx_root", "verify_block"}
    detail = {x["name"]: x["detail"] for x in result["checks"]}
    assert "tx 0" in detail["tx_signatures"] and "does not verify" in detail["tx_signatures"]
    assert "Merkle root" in detail["verify_block"]
    assert _checks(c, path, 1)["ok"] and _checks(c, path, 3)["ok"]  # the neighbours are untouched


def test_edited_tx_body_is_named(chain: tuple[Consortium, Path]) -> None:
    c, path = chain
    body = _read(path, "SELECT body FROM txs WHERE height=2 AND idx=0")
    assert b"bank owner" in body
    _edit(path, "UPDATE txs SET body=? WHERE height=2 AND idx=0", body.replace(b"bank owner", b"bank 0wner"))
    result = _checks(c, path, 2)
    assert _failing(result) == {"tx_ids", "tx_signatures", "tx_root", "verify_block"}


def test_edited_header_and_stored_hash_are_named(chain: tuple[Consortium, Path]) -> None:
    c, path = chain
    raw = _read(path, "SELECT header FROM blocks WHERE height=3")
    h = BlockHeader.decode(bytes(raw))
    forged = BlockHeader(**{**h.to_json(), "time": h.time - 1}).encode()
    _edit(path, "UPDATE blocks SET header=? WHERE height=3", forged)
    assert _failing(_checks(c, path, 3)) == {"block_hash", "orderer_signature", "verify_block"}
    assert _checks(c, path, 4)["ok"]  # block 4 links to the stored hash, which did not change
    _edit(path, "UPDATE blocks SET hash=? WHERE height=3", c.genesis.crypto.hash(forged).hex())
    assert _failing(_checks(c, path, 3)) == {"orderer_signature", "verify_block"}
    assert _failing(_checks(c, path, 4)) == {"prev_link", "verify_block"}


def test_a_removed_members_txs_still_verify(chain: tuple[Consortium, Path]) -> None:
    c, path = chain
    c.send(c.admins["tax"], "member.remove", {"key_id": c.owners["tax"].key_id})
    assert c.query(f"member/{c.owners['tax'].key_id}")["active"] is False
    assert _checks(c, path, 8)["ok"]  # the tax owner's dataset.register, signed before the removal


def test_same_state() -> None:
    def n(height: int | None, root: str | None, reachable: bool = True) -> dict[str, Any]:
        return {"reachable": reachable, "height": height, "state_root": root}

    assert same_state([n(5, "a"), n(5, "a"), n(None, None, False)]) is True
    assert same_state([n(5, "a"), n(5, "b"), n(4, "c")]) is False
    assert same_state([n(5, "a"), n(4, "b")]) is None  # one is catching up
    assert same_state([n(5, "a"), n(None, None, False), n(None, None, False)]) is None  # nothing to compare


def test_a_silent_or_absent_peer_is_reported_not_raised() -> None:
    with socket.socket() as silent, httpx.Client(timeout=httpx.Timeout(0.3)) as http:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connects (the kernel accepts), never answers
        port = silent.getsockname()[1]
        out = probe_health(http, "tax", f"http://127.0.0.1:{port}")
        assert out["reachable"] is False and out["error"].startswith("ReadTimeout"), out
        assert out["org"] == "tax" and out["height"] is None
    with httpx.Client(timeout=0.3) as http:
        out = probe_health(http, "tax", f"http://127.0.0.1:{port}")  # nothing listens now
    assert out["reachable"] is False and out["error"].startswith("ConnectError"), out


def test_peer_answers_that_are_not_health_are_reported() -> None:
    answers = {
        "halted": httpx.Response(503, json={"error": {"code": "NODE_HALTED", "message": "block 4: bad"}}),
        "proxy": httpx.Response(502, text="bad gateway"),
        "list": httpx.Response(200, json=[1, 2]),
        "other": httpx.Response(200, json={"org": "bank", "height": 3}),
        "old": httpx.Response(200, json={"org": "tax", "height": 3}),  # a node without the new keys
    }
    transport = httpx.MockTransport(lambda req: answers[str(req.url.host)])
    with httpx.Client(transport=transport) as http:
        out = {host: probe_health(http, "tax", f"http://{host}") for host in answers}
    assert out["halted"]["error"] == "HTTP 503: NODE_HALTED: block 4: bad"
    assert out["proxy"]["error"] == "HTTP 502"
    assert out["list"]["error"] == "the health answer is not the node API's JSON"
    assert out["other"]["error"] == "the node at this URL says it serves org 'bank'"
    assert [host for host, e in out.items() if e["reachable"]] == ["old"]
    assert out["old"]["height"] == 3 and out["old"]["state_root"] is None


# -- the routes, on a network of processes ------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    n = start_network(tmp_path_factory.mktemp("explorer") / "consortium")
    yield n
    n.stop_all()


@pytest.fixture(scope="module")
def world(net: Network) -> dict[str, Any]:
    """A unit and a member made by the bank, then every node synced."""
    bank = net.client("bank")
    unit = sdk.create_unit(bank.ledger, bank.identity, "risk", "Risk")
    member = Identity.generate()
    added = sdk.add_member(bank.ledger, bank.identity, member, name="Risk analyst", roles=["analyst"])
    tax = net.client("tax")
    sdk.create_unit(tax.ledger, tax.identity, "collection", "Collection")
    head = net.sync()
    return {"unit_tx": unit.tx_id, "unit_height": unit.height, "member_tx": added.tx_id, "head": head}


@slow
def test_blocks_newest_first_and_paging(net: Network, world: dict[str, Any]) -> None:
    bank = net.client("bank")
    first = bank.call("GET", "/v1/blocks", params={"limit": 2})
    assert first["head"] == world["head"]
    assert [b["height"] for b in first["blocks"]] == [world["head"], world["head"] - 1]
    assert first["next_before"] == world["head"] - 1
    rest = bank.call("GET", "/v1/blocks", params={"before": first["next_before"], "limit": 100})
    heights = [b["height"] for b in first["blocks"] + rest["blocks"]]
    assert heights == list(range(world["head"], -1, -1)) and rest["next_before"] is None
    blocks = first["blocks"] + rest["blocks"]
    for newer, older in pairwise(blocks):
        assert newer["prev_hash"] == older["hash"] and newer["time"] >= older["time"]
    top = blocks[0]
    assert set(top) == {"height", "hash", "prev_hash", "time", "time_text", "tx_count", "orderer", "tx_root"}
    assert top["time_text"].endswith("Z") and top["tx_count"] >= 1
    assert bank.call("GET", "/v1/blocks", params={"before": 0})["blocks"] == []
    with pytest.raises(ApiCallError) as info:
        bank.call("GET", "/v1/blocks", params={"limit": 101})
    assert info.value.status == 422


@slow
def test_block_detail_with_txs_and_verification(net: Network, world: dict[str, Any]) -> None:
    detail = net.client("tax").call("GET", f"/v1/blocks/{world['unit_height']}")
    assert detail["height"] == world["unit_height"]
    assert detail["verification"]["ok"] is True, detail["verification"]
    assert [c["name"] for c in detail["verification"]["checks"]] == ALL_CHECKS
    tx = next(t for t in detail["txs"] if t["tx_id"] == world["unit_tx"])
    bank_admin = net.client("bank").identity.key_id
    assert tx["type"] == "unit.create" and tx["signer"] == bank_admin
    assert tx["signer_org"] == "bank" and tx["signer_name"] == "Bank admin"
    assert tx["code"] == 0 and tx["code_name"] == "OK" and tx["reason"] == ""
    assert tx["summary"] == "unit risk (Risk)" and isinstance(tx["created_at"], int)
    genesis = net.client("tax").call("GET", "/v1/blocks/0")
    assert genesis["verification"]["ok"] and genesis["txs"] == []
    assert genesis["verification"]["checks"][-1]["name"] == "genesis"


@slow
def test_tx_detail(net: Network, world: dict[str, Any]) -> None:
    tx = net.client("power").call("GET", f"/v1/txs/{world['member_tx']}")
    assert tx["type"] == "member.add" and tx["signer_org"] == "bank"
    assert tx["payload"]["name"] == "Risk analyst" and tx["payload"]["roles"] == ["analyst"]
    assert tx["summary"] == "Risk analyst as analyst"
    block = net.client("power").call("GET", f"/v1/blocks/{tx['height']}")
    assert block["hash"] == tx["block_hash"] and block["time"] == tx["time"]
    assert tx["events"] and tx["events"][0]["type"] == "member.added"


@slow
def test_unknown_height_or_tx_is_404_and_unsigned_is_401(net: Network, world: dict[str, Any]) -> None:
    bank = net.client("bank")
    for path in ("/v1/blocks/100000", f"/v1/txs/{'0' * 64}"):
        with pytest.raises(ApiCallError) as info:
            bank.call("GET", path)
        assert info.value.status == 404 and info.value.code == "NOT_FOUND"
    for path in ("/v1/blocks", "/v1/blocks/0", f"/v1/txs/{world['unit_tx']}", "/v1/consortium/nodes"):
        resp = httpx.get(net.url("bank") + path, verify=net.verify())
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "UNAUTHENTICATED", path


@slow
def test_health_reports_head_hash_and_state_root(net: Network, world: dict[str, Any]) -> None:
    net.sync()
    health = net.health("bank")
    status = net.client("bank").status()
    assert set(health) == {"org", "height", "head_hash", "state_root", "orderer_error"}
    assert (health["height"], health["head_hash"], health["state_root"]) == (
        status["height"],
        status["head_hash"],
        status["state_root"],
    )


@slow
def test_consortium_nodes_all_reachable_same_state(net: Network, world: dict[str, Any]) -> None:
    net.sync()
    view = net.client("tax").call("GET", "/v1/consortium/nodes")
    assert [n["org"] for n in view["nodes"]] == ["tax", "bank", "power"]
    assert [n["self"] for n in view["nodes"]] == [True, False, False]
    for n in view["nodes"]:
        assert n["reachable"] is True and n["error"] is None, n
        assert n["url"] == net.url(n["org"])
    assert len({(n["height"], n["head_hash"], n["state_root"]) for n in view["nodes"]}) == 1
    assert view["same_state"] is True


def _tax_db(net: Network) -> Path:
    url = load_node_config(net.root / "tax").database_url
    assert url.startswith("sqlite:///")
    return Path(url[len("sqlite:///") :])


@slow
def test_tampered_store_reported_by_its_node(net: Network, world: dict[str, Any]) -> None:
    """Edit a tx signature in the stopped tax node's database: the node starts (it verified blocks
    when it applied them, not at start), and its explorer shows the block failing re-verification."""
    h = world["unit_height"]
    net.kill("tax", signal.SIGTERM)
    path = _tax_db(net)
    sig = _read(path, "SELECT sig FROM txs WHERE height=? AND idx=0", h)
    _edit(path, "UPDATE txs SET sig=? WHERE height=? AND idx=0", bytes([sig[0] ^ 1]) + sig[1:], h)
    net.start("tax")
    try:
        result = net.client("tax").call("GET", f"/v1/blocks/{h}")["verification"]
        assert result["ok"] is False
        assert _failing(result) == {"tx_signatures", "tx_root", "verify_block"}
        assert net.client("bank").call("GET", f"/v1/blocks/{h}")["verification"]["ok"] is True
    finally:  # put the signature back, for the tests after this one
        net.kill("tax", signal.SIGTERM)
        _edit(path, "UPDATE txs SET sig=? WHERE height=? AND idx=0", bytes(sig), h)
        net.start("tax")
    assert net.client("tax").call("GET", f"/v1/blocks/{h}")["verification"]["ok"] is True


@slow
def test_killed_node_reported_unreachable(net: Network, world: dict[str, Any]) -> None:
    net.kill("power")
    try:
        for org in ("bank", "tax"):
            view = net.client(org).call("GET", "/v1/consortium/nodes")
            by_org = {n["org"]: n for n in view["nodes"]}
            power = by_org["power"]
            assert power["reachable"] is False and power["error"], power
            assert power["height"] is None and power["state_root"] is None
            assert by_org["bank"]["reachable"] and by_org["tax"]["reachable"]
            assert view["same_state"] is True  # nothing was written since: bank and tax agree
        assert net.client("bank").call("GET", "/v1/blocks", params={"limit": 1})["blocks"]
    finally:
        net.start("power")
