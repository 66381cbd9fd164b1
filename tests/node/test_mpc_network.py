"""MPC joint statistics between org nodes (separate processes, https): bank, "power", dealer "tax".

A psi run (output both) aligns the rows; the mpc run leaves its outputs as shares on the two parties'
nodes; each node hands its share to the requester only once the ledger shows the release approved by
both input owners. Tests run in order on one network and build on each other's state.
"""

from __future__ import annotations

import json
import re
import sqlite3
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from netfixture import Network, grant, owners_and_datasets, start_network_logging_wire
from typer.testing import CliRunner

from confide.engines.mpc import MpcError
from confide.engines.mpc.stats import StatsSpec, finalize
from confide.engines.mpc.wire import Header, Tag, decode_message
from confide.interfaces import sdk
from confide.interfaces.cli import app
from confide.interfaces.client import ApiCallError, Client
from confide.interfaces.mpc import MpcRunFailed, fetch_mpc_result, run_mpc_task, submit_mpc_task
from confide.interfaces.psi import input_digests, run_psi_task, submit_psi_task
from confide.node.mpc import session_bytes

pytestmark = pytest.mark.slow
DAY = 86_400_000
CUSTOMERS, SUBSCRIBERS = "bank/retail/customers", "power/mobile/subscribers"
BANK_COLS = ["phone", "assets", "age", "tier"]
PARTNER_COLS = ["phone", "monthly_spend", "data_gb"]
SHARED = [f"+86138{i:08d}" for i in range(200)]
BANK_ONLY = [f"+86137{i:08d}" for i in range(100)]
PARTNER_ONLY = [f"+86199{i:08d}" for i in range(100)]
CANARY_SPEND = [8_765_400.25 + i for i in range(100)]  # partner-only rows: never on the bank's side
CANARY_GB = [4_321_000.75 + i for i in range(100)]
CANARY_RE = re.compile(rb"87654\d\d\.25|43210\d\d\.75|\+86199\d{8}")


def _shared_values() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    assets = np.round(rng.lognormal(11, 0.6, len(SHARED)), 2)
    age = rng.integers(20, 70, len(SHARED)).astype(np.float64)
    tier = np.digitize(assets, np.quantile(assets, [1 / 3, 2 / 3]))
    spend = np.round(40 + assets / 2000 + rng.normal(0, 10, len(SHARED)), 2)
    data_gb = np.round(np.abs(80 - age + rng.normal(0, 5, len(SHARED))), 1)
    return {"assets": assets, "age": age, "tier": tier, "spend": spend, "data_gb": data_gb}


def _write_data(root: Path) -> None:
    v = _shared_values()
    bank = [",".join(BANK_COLS)]
    bank += [f"{p},{5000 + 10 * i}.5,{30 + i % 40},{i % 3}" for i, p in enumerate(BANK_ONLY)]
    bank += [
        f"{p},{v['assets'][i]},{int(v['age'][i])},{v['tier'][i]}"
        for i, p in reversed(list(enumerate(SHARED)))
    ]
    partner = [",".join(PARTNER_COLS)]
    partner += [f"{p},{CANARY_SPEND[i]},{CANARY_GB[i]}" for i, p in enumerate(PARTNER_ONLY)]
    partner += [f"{p},{v['spend'][i]},{v['data_gb'][i]}" for i, p in enumerate(SHARED)]
    (root / "bank" / "data" / "customers.csv").write_text("\n".join(bank) + "\n", encoding="utf-8")
    (root / "power" / "data" / "subscribers.csv").write_text("\n".join(partner) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    n = start_network_logging_wire(tmp_path_factory.mktemp("mpc-net") / "consortium")
    yield n
    n.stop_all()


def _grant(w: dict[str, Any], dataset: str, columns: list[str]) -> str:
    owner = w["owners"][dataset.split("/")[0]]
    purpose = "joint statistics for a campaign"
    return grant(w["analyst"], owner, dataset, columns=columns, engines=["psi", "mpc"], purpose=purpose)


@pytest.fixture(scope="module")
def world(net: Network) -> dict[str, Any]:
    _write_data(net.root)
    datasets = (("bank", "retail", "customers", {}), ("power", "mobile", "subscribers", {}))
    owners, analyst = owners_and_datasets(net, datasets)
    w: dict[str, Any] = {"owners": owners, "grants": {}, "analyst": analyst}
    w["at"] = {
        o: Client(net.url(o), analyst.identity, ca_bundle=net.bundle) for o in ("bank", "power", "tax")
    }
    w["grants"][CUSTOMERS] = _grant(w, CUSTOMERS, BANK_COLS)
    w["grants"][SUBSCRIBERS] = _grant(w, SUBSCRIBERS, PARTNER_COLS)
    net.sync()
    psi_task = submit_psi_task(
        w["analyst"],
        mine=(CUSTOMERS, w["grants"][CUSTOMERS], "phone"),
        theirs=(SUBSCRIBERS, w["grants"][SUBSCRIBERS], "phone"),
        output="both",
    )
    net.sync()
    w["psi_run"] = run_psi_task(w["analyst"], psi_task)["run"]
    net.sync()
    return w


def _mpc_task(
    net: Network,
    w: dict[str, Any],
    *,
    dealer: str = "tax",
    partner_grant: str | None = None,
    grouped: bool = True,
    min_cell: int | None = None,
) -> str:
    task = submit_mpc_task(
        w["analyst"],
        mine=(CUSTOMERS, w["grants"][CUSTOMERS], BANK_COLS),
        theirs=(SUBSCRIBERS, partner_grant or w["grants"][SUBSCRIBERS], PARTNER_COLS),
        psi_run=w["psi_run"],
        dealer=dealer,
        group_key=f"{CUSTOMERS}:tier" if grouped else None,
        n_groups=3 if grouped else None,
        min_cell=min_cell,
    )
    net.sync()
    return task


def _rows(net: Network, org: str, table: str, run: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(net.root / org / "node.sqlite")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM {table} WHERE run = ?", (run,))]
    finally:
        con.close()


def _plain() -> dict[str, Any]:
    v = _shared_values()
    x = np.column_stack([v["assets"], v["age"], v["spend"], v["data_gb"]])
    groups = [x[v["tier"] == g][:, 2:] for g in range(3)]
    return {
        "count": len(SHARED),
        "sum": x.sum(axis=0),
        "mean": x.mean(axis=0),
        "var": x.var(axis=0),
        "cov": np.cov(x, rowvar=False, ddof=0),
        "g_count": [len(g) for g in groups],
        "g_mean": np.array([g.mean(axis=0) for g in groups]),
        "g_var": np.array([g.var(axis=0) for g in groups]),
    }


def _not_released(w: dict[str, Any], run: str) -> list[str]:
    messages = []
    for org in ("bank", "power"):
        with pytest.raises(ApiCallError) as refused:
            w["at"][org].call("POST", f"/v1/mpc/shares/{run}", {"min_height": -1})
        assert refused.value.code == "NOT_RELEASED", refused.value
        messages.append(refused.value.message)
    return messages


def test_joint_stats_stay_shares_until_both_owners_release(net: Network, world: dict[str, Any]) -> None:
    w = world
    psi = {r["dataset"]: r for o in ("bank", "power") for r in _rows(net, o, "node_psi_runs", w["psi_run"])}
    assert psi[CUSTOMERS]["ids"] and psi[SUBSCRIBERS]["ids"]  # output both: each node holds its IDs

    started = time.monotonic()
    out = run_mpc_task(w["analyst"], _mpc_task(net, w))
    assert out["rows"] == len(SHARED) and len(out["share_digests"]) == 2
    net.sync()
    run = out["run"]
    assert w["analyst"].query(f"run/{run}")["output_digest"] == out["output_digest"]
    assert w["analyst"].query(f"release/{run}")["status"] == "pending"
    (dealer,) = _rows(net, "tax", "node_mpc_runs", run)
    assert dealer["role"] == "dealer" and dealer["share"] is None
    for org, party in (("bank", 0), ("power", 1)):
        (rec,) = _rows(net, org, "node_mpc_runs", run)
        assert rec["party"] == party and rec["status"] == "done" and rec["share"]

    # before any approval: no node hands out its share
    assert all(CUSTOMERS in m and SUBSCRIBERS in m for m in _not_released(w, run))
    # the bank's own share (which its operators could read off its disk) alone is not the result
    (mine,) = _rows(net, "bank", "node_mpc_runs", run)
    spec = StatsSpec(**json.loads(mine["spec"]))
    session = session_bytes(run, mine["session"])
    alone = decode_message(bytes(mine["share"]), Header(0, 9, session, 0, Tag.REVEAL), spec.n_outputs)
    plain = _plain()
    fake_sum: np.ndarray | None
    try:
        with np.errstate(all="ignore"):
            fake_sum = np.asarray(finalize(spec, alone)["sum"], dtype=np.float64)
    except (ValueError, OverflowError, TypeError, MpcError):
        fake_sum = None  # a lone share does not even decode into statistics
    assert fake_sum is None or not np.allclose(fake_sum, plain["sum"], rtol=0.01)

    bank_owner, power_owner = w["owners"]["bank"], w["owners"]["power"]
    sdk.decide_release(bank_owner.ledger, bank_owner.identity, run, CUSTOMERS)
    net.sync()
    for m in _not_released(w, run):  # one approval is not enough; the message names who is missing
        assert SUBSCRIBERS in m and CUSTOMERS not in m.split(":")[-1]
    sdk.decide_release(power_owner.ledger, power_owner.identity, run, SUBSCRIBERS)
    net.sync()

    got = fetch_mpc_result({"bank": w["at"]["bank"], "power": w["at"]["power"]}, run)
    elapsed = time.monotonic() - started
    names = [
        f"{CUSTOMERS}:assets",
        f"{CUSTOMERS}:age",
        f"{SUBSCRIBERS}:monthly_spend",
        f"{SUBSCRIBERS}:data_gb",
    ]
    assert got["columns"] == names and got["count"] == plain["count"]
    for key in ("sum", "mean", "var"):
        np.testing.assert_allclose([got[key][n] for n in names], plain[key], rtol=1e-4)
    cov = np.array([[got["cov"][a][b] for b in names] for a in names])
    scale = np.sqrt(np.outer(plain["var"], plain["var"]))
    assert np.all(np.abs(cov - plain["cov"]) <= 1e-4 * scale)
    g = got["groups"]
    assert g["key_owner"] == 0 and g["columns"] == names[2:] and g["count"] == plain["g_count"]
    np.testing.assert_allclose(g["mean"], plain["g_mean"], rtol=1e-4)
    np.testing.assert_allclose(g["var"], plain["g_var"], rtol=1e-3)
    assert elapsed < 30


def test_without_a_group_key_every_row_is_one_group(net: Network, world: dict[str, Any]) -> None:
    w = world
    out = run_mpc_task(w["analyst"], _mpc_task(net, w, grouped=False))
    for org, dataset in (("bank", CUSTOMERS), ("power", SUBSCRIBERS)):
        owner = w["owners"][org]
        sdk.decide_release(owner.ledger, owner.identity, out["run"], dataset)
    net.sync()
    got = fetch_mpc_result({"bank": w["at"]["bank"], "power": w["at"]["power"]}, out["run"])
    plain = _plain()
    assert len(got["columns"]) == 5 and got["groups"]["count"] == [len(SHARED)]
    np.testing.assert_allclose(got["groups"]["mean"][0], plain["mean"][2:], rtol=1e-4)
    np.testing.assert_allclose(got["mean"][f"{CUSTOMERS}:tier"], np.mean(_shared_values()["tier"]), rtol=1e-4)


def test_groups_below_the_minimum_cell_size_are_suppressed_inside_the_mpc(
    net: Network, world: dict[str, Any]
) -> None:
    """A group with fewer aligned rows than ``min_cell`` comes back as None (its shares were zeroed
    inside the MPC: no party learned which group it was); the other groups equal plaintext."""
    w, plain = world, _plain()
    smallest = min(plain["g_count"])
    out = run_mpc_task(w["analyst"], _mpc_task(net, w, min_cell=smallest + 1))
    for org, dataset in (("bank", CUSTOMERS), ("power", SUBSCRIBERS)):
        owner = w["owners"][org]
        sdk.decide_release(owner.ledger, owner.identity, out["run"], dataset)
    net.sync()
    got = fetch_mpc_result({"bank": w["at"]["bank"], "power": w["at"]["power"]}, out["run"])
    small = [c < smallest + 1 for c in plain["g_count"]]
    assert any(small) and not all(small)
    assert got["suppressed"]["groups"] == small and got["suppressed"]["min_cell"] == smallest + 1
    g = got["groups"]
    for i, gone in enumerate(small):
        if gone:
            assert g["count"][i] is None and g["mean"][i] == [None, None] and g["sum"][i] == [None, None]
        else:
            assert g["count"][i] == plain["g_count"][i]
            np.testing.assert_allclose(g["mean"][i], plain["g_mean"][i], rtol=1e-4)
    np.testing.assert_allclose(got["mean"][f"{SUBSCRIBERS}:monthly_spend"], plain["mean"][2], rtol=1e-4)

    with pytest.raises(MpcRunFailed) as refused:  # fewer aligned rows than the minimum: nothing runs
        run_mpc_task(w["analyst"], _mpc_task(net, w, min_cell=len(SHARED) + 1))
    assert refused.value.code == "TOO_FEW_ROWS"


def test_a_cancelled_run_leaves_no_share_on_any_node(net: Network, world: dict[str, Any]) -> None:
    """The shares are computed and kept on both parties' nodes; the requester cancels the run instead
    of committing to them: each node erases its share (nothing half-written stays behind)."""
    w = world
    task = _mpc_task(net, w)
    analyst = w["analyst"]
    r = sdk.start_run(
        analyst.ledger, analyst.identity, task, input_digests(analyst, analyst.query(f"task/{task}"))
    )
    out = analyst.call("POST", "/v1/mpc/runs", {"run": r.tx_id, "min_height": r.height})
    assert len(out["share_digests"]) == 2
    for org in ("bank", "power"):
        (rec,) = _rows(net, org, "node_mpc_runs", r.tx_id)
        assert rec["share"]
    key = analyst.identity.save(net.root.parent / "analyst-cancel.pem")
    env = {"CONFIDE_CA_BUNDLE": str(net.bundle), "CONFIDE_NODE_URL": None, "CONFIDE_KEY": None}
    args = ["task", "cancel-run", r.tx_id, "--node", net.url("bank"), "--key", str(key)]
    done = CliRunner().invoke(app, [*args, "--reason", "wrong segment definition"], env=env)
    assert done.exit_code == 0 and "cancelled at block" in done.output, done.output
    again = CliRunner().invoke(app, args, env=env)  # a run ends once: a clear refusal, no traceback
    assert again.exit_code == 1 and "INVALID_STATE" in again.output and "Traceback" not in again.output
    net.sync()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        recs = {org: _rows(net, org, "node_mpc_runs", r.tx_id)[0] for org in ("bank", "power")}
        if all(rec["share"] is None for rec in recs.values()):
            break
        time.sleep(0.1)
    for org, rec in recs.items():
        assert rec["share"] is None and rec["status"] == "cancelled", (org, rec["status"])
    assert analyst.query(f"run/{r.tx_id}")["status"] == "cancelled"


def test_partner_grant_revoked_after_run_start_is_refused_by_its_node(
    net: Network, world: dict[str, Any]
) -> None:
    w = world
    grant = _grant(w, SUBSCRIBERS, PARTNER_COLS)
    net.sync()
    analyst, partner = w["analyst"], w["owners"]["power"]
    task = _mpc_task(net, w, partner_grant=grant)
    r = sdk.start_run(
        analyst.ledger, analyst.identity, task, input_digests(analyst, analyst.query(f"task/{task}"))
    )
    sdk.revoke(partner.ledger, partner.identity, grant, "contract ended")
    net.sync()
    with pytest.raises(ApiCallError) as refused:
        analyst.call("POST", "/v1/mpc/runs", {"run": r.tx_id, "min_height": analyst.last_height})
    assert refused.value.code == "PEER_REFUSED"
    assert "GRANT_REFUSED" in refused.value.message and "revoked" in refused.value.message
    (mine,) = _rows(net, "bank", "node_mpc_runs", r.tx_id)
    assert mine["status"] == "failed" and mine["share"] is None
    assert _rows(net, "power", "node_mpc_runs", r.tx_id) == []  # the partner never started
    deadline = time.time() + 10
    while time.time() < deadline:  # the dealer, asked first, was told to stop
        rows = _rows(net, "tax", "node_mpc_runs", r.tx_id)
        if rows and rows[0]["status"] == "failed":
            break
        time.sleep(0.1)
    assert rows[0]["status"] == "failed"
    sdk.finish_run(
        analyst.ledger, analyst.identity, r.tx_id, output_digest=None, status="failed", reason="test"
    )


def test_a_dealer_that_is_a_party_is_refused(net: Network, world: dict[str, Any]) -> None:
    with pytest.raises(MpcRunFailed) as failed:
        run_mpc_task(world["analyst"], _mpc_task(net, world, dealer="power"))
    assert failed.value.code == "DEALER_IS_A_PARTY" and "third org" in failed.value.message
    net.sync()
    assert world["analyst"].query(f"run/{failed.value.run}")["status"] == "failed"


def test_partner_only_values_never_reach_the_bank_or_the_wire(net: Network, world: dict[str, Any]) -> None:
    assert CANARY_RE.search((net.root / "power" / "data" / "subscribers.csv").read_bytes())  # planted
    wire = (net.root.parent / "wire.bin").read_bytes()
    assert len(wire) > 10_000
    floats = [struct.pack("<d", x) for x in CANARY_SPEND + CANARY_GB]
    places = [p for p in (net.root / "bank").rglob("*") if p.is_file()]
    places += [p for p in (net.root / "orderer").rglob("*") if p.is_file()]  # the ledger
    places += [net.root / "bank.log", net.root / "orderer.log", net.root / "tax" / "node.sqlite"]
    places += [net.root.parent / "wire.bin"]
    for path in places:
        data = path.read_bytes()
        assert not CANARY_RE.search(data), f"a partner-only value found in {path}"
        assert not any(f in data for f in floats), f"a partner-only value (float64) found in {path}"
