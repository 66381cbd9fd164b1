"""FL between org nodes as processes: a provincial bureau's node coordinates three cities' nodes.

Secure aggregation over the nodes' signed links, every round on the ledger, the model released only
after every participant's owner approved; grants enforced at each round by both sides; canaries
planted in the cities' data never reach the coordinator's disk, logs, any ledger copy or the wire.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from netfixture import assert_absent, env_var, receiving_side

from confide.crypto import Identity, load_identity
from confide.crypto.httpsig import sign_request
from confide.engines.fl import auc
from confide.engines.fl.federation import StepRequest, pack_step
from confide.interfaces import sdk
from confide.interfaces.client import ApiCallError, Client
from confide.interfaces.fl import fetch_fl_model, run_fl_task, submit_fl_task
from confide.ledger import TxRefused
from confide.node.consortium import OrgEntry
from confide.scenarios.localnet import LocalNetwork, start_local_network

ORGS = (
    OrgEntry("bureau", "Provincial Data Bureau"),
    OrgEntry("city-a", "City A Water"),
    OrgEntry("city-b", "City B Water"),
    OrgEntry("city-c", "City C Water"),
)
CITIES = ("city-a", "city-b", "city-c")
COLUMNS = ["rain", "level", "slope", "holdout", "flooded"]
CANARY_NAME = "CANARY-district-zz91"
CANARY_VALUE = 987.654321  # one planted rain value in city-b's file
DAY = 86_400_000


def _rows(seed: int, n: int = 1200) -> list[list[Any]]:
    rng = np.random.default_rng(seed)
    rain = rng.gamma(1.2, 8.0 + 3 * seed, n)
    level = rng.normal(2.0 + 0.3 * seed, 0.5, n)
    slope = rng.uniform(0, 10, n)
    logit = 0.12 * rain + 1.2 * (level - 2) - 0.3 * slope - 1.0
    flooded = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return [
        [f"{CANARY_NAME}-{seed}" if i == 0 else f"d{i % 30:02d}", *vals, int(i % 5 == 0), int(y)]
        for i, (*vals, y) in enumerate(
            zip(rain.round(4), level.round(4), slope.round(4), flooded, strict=True)
        )
    ]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    root = tmp_path_factory.mktemp("fl-net") / "consortium"
    with env_var("CONFIDE_PSI_WIRE_LOG", str(root.parent / "wire.bin")):  # the coordinator logs every step
        n = start_local_network(root, ORGS, chain_id="fl-test")
    yield n
    n.stop_all()


@pytest.fixture(scope="module")
def world(net: LocalNetwork) -> dict[str, Any]:
    owners: dict[str, Client] = {}
    for i, org in enumerate(CITIES):
        rows = _rows(i)
        if org == "city-b":
            rows[3][1] = CANARY_VALUE
        with (net.root / org / "data" / "records.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["district", *COLUMNS])
            w.writerows(rows)
        admin = net.client(org)
        sdk.create_unit(admin.ledger, admin.identity, "water", "Water Authority")
        owner = Identity.generate()
        sdk.add_member(
            admin.ledger, admin.identity, owner, name=f"{org} owner", roles=["unit_owner"], unit="water"
        )
        owners[org] = c = Client(net.url(org), owner, ca_bundle=net.bundle)
        c.register_dataset(
            org=org,
            unit="water",
            name="records",
            title="Records",
            source={"type": "csv", "path": "records.csv"},
        )
    analyst = Identity.generate()
    bureau = net.client("bureau")
    sdk.add_member(bureau.ledger, bureau.identity, analyst, name="analyst", roles=["analyst"])
    requester = Client(net.url("bureau"), analyst, ca_bundle=net.bundle)
    net.sync()
    return {"owners": owners, "analyst": requester}


def _grants(world: dict[str, Any], engines: list[str] | None = None) -> dict[str, str]:
    analyst, out = world["analyst"], {}
    for org, owner in world["owners"].items():
        app = sdk.apply_for(
            analyst.ledger,
            analyst.identity,
            dataset=f"{org}/water/records",
            purpose="waterlogging model",
            columns=COLUMNS,
            engines=engines or ["fl"],
            max_uses=5,
            expires_at=int(time.time() * 1000) + DAY,
        ).tx_id
        sdk.approve(owner.ledger, owner.identity, app, "unit")
        out[org] = app
    return out


def _task(world: dict[str, Any], grants: dict[str, str], **kw: Any) -> str:
    inputs = [(f"{org}/water/records", grants[org], COLUMNS) for org in CITIES]
    params = {"label": "flooded", "holdout": "holdout", "rounds": 3, "learning_rate": 0.2} | kw
    return submit_fl_task(world["analyst"], inputs=inputs, **params)


def test_a_run_records_every_round_and_the_model_is_released_only_after_every_owner(
    net: LocalNetwork, world: dict[str, Any]
) -> None:
    analyst = world["analyst"]
    lines: list[str] = []
    out = run_fl_task(analyst, _task(world, _grants(world)), say=lines.append)
    run = analyst.query(f"run/{out['run']}")
    assert [r["round"] for r in run["fl_rounds"]] == [0, 1, 2, 3]
    assert all(r["participants"] == list(CITIES) and r["dropped"] == [] for r in run["fl_rounds"]), run[
        "fl_rounds"
    ]
    assert run["output_digest"] == run["fl_final"]["model_digest"] == run["fl_rounds"][-1]["model_digest"]
    assert any(line.startswith("[coordinator] ") for line in lines), lines
    release = analyst.query(f"release/{out['run']}")
    assert release["metrics"] == out["metrics"] and float(out["metrics"]["val_auc"]) > 0.75

    for i, org in enumerate(CITIES):  # before every owner approved: refused
        with pytest.raises(ApiCallError) as refused:
            fetch_fl_model(analyst, out["run"])
        assert refused.value.code == "NOT_RELEASED"
        owner = world["owners"][org]
        sdk.decide_release(owner.ledger, owner.identity, out["run"], f"{org}/water/records")
        net.sync()
        if i == 0:  # another member than the requester never gets the model
            with pytest.raises(ApiCallError):
                Client(net.url("bureau"), owner.identity, ca_bundle=net.bundle).call(
                    "POST", f"/v1/fl/models/{out['run']}", {}
                )
    model = fetch_fl_model(analyst, out["run"])
    rows = np.array([r[1:] for i in range(3) for r in _rows(i)], dtype=float)
    val = rows[rows[:, 3] == 1]
    assert auc(model.predict(val[:, :3]), val[:, 4]) == pytest.approx(
        float(out["metrics"]["val_auc"]), abs=0.01
    )
    roots = {net.health(o)["state_root"] for o in net.orgs}
    assert len(roots) == 1


def test_a_city_whose_grant_is_revoked_takes_no_part_and_its_node_refuses(
    net: LocalNetwork, world: dict[str, Any]
) -> None:
    analyst = world["analyst"]
    grants = _grants(world)
    task = _task(world, grants)
    r = sdk.start_run(analyst.ledger, analyst.identity, task, _digests(analyst, task))
    owner = world["owners"]["city-c"]
    sdk.revoke(owner.ledger, owner.identity, grants["city-c"], "agreement ended")
    net.sync()
    # the city's own node refuses a step of that run, whoever asks (here: the coordinator's key)
    step = StepRequest(r.tx_id, "setup", 0, 0, b"", clients={o: i + 1 for i, o in enumerate(CITIES)})
    refused = _raw_step(net, "bureau", "city-c", pack_step(step))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "GRANT_REFUSED"
    analyst.call("POST", "/v1/fl/runs", {"run": r.tx_id, "min_height": r.height})
    status = _wait(analyst, r.tx_id)
    assert status["status"] == "done", status
    run = analyst.query(f"run/{r.tx_id}")
    assert all(
        x["participants"] == ["city-a", "city-b"] and x["dropped"] == ["city-c"] for x in run["fl_rounds"]
    )
    with pytest.raises(TxRefused):  # and the ledger refuses the next run
        sdk.start_run(analyst.ledger, analyst.identity, task, _digests(analyst, task))


def test_too_many_dropouts_fail_the_run_and_record_no_round(net: LocalNetwork, world: dict[str, Any]) -> None:
    analyst = world["analyst"]
    grants = _grants(world)
    task = _task(world, grants)
    r = sdk.start_run(analyst.ledger, analyst.identity, task, _digests(analyst, task))
    for org in ("city-b", "city-c"):
        owner = world["owners"][org]
        sdk.revoke(owner.ledger, owner.identity, grants[org], "paused")
    net.sync()
    analyst.call("POST", "/v1/fl/runs", {"run": r.tx_id, "min_height": analyst.last_height})
    status = _wait(analyst, r.tx_id)
    assert status["status"] == "failed" and "TooManyDropouts" in status["reason"]
    assert analyst.query(f"run/{r.tx_id}").get("fl_rounds") is None  # nothing recorded as done


def test_a_grant_for_another_engine_does_not_cover_fl(net: LocalNetwork, world: dict[str, Any]) -> None:
    with pytest.raises(TxRefused) as refused:
        _task(world, _grants(world, engines=["mpc"]))
    assert "engine" in refused.value.reason


def test_a_participant_refuses_a_replayed_or_foreign_step(net: LocalNetwork, world: dict[str, Any]) -> None:
    analyst = world["analyst"]
    task = _task(world, _grants(world))
    r = sdk.start_run(analyst.ledger, analyst.identity, task, _digests(analyst, task))
    net.sync()
    step = pack_step(
        StepRequest(r.tx_id, "setup", 0, 0, b"", clients={o: i + 1 for i, o in enumerate(CITIES)})
    )
    # a member of another org's node (not the requester's) is not the coordinator
    foreign = _raw_step(net, "city-b", "city-a", step)
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "NOT_COORDINATOR"
    # the requester's node with client keys that are not the orgs' node keys on the ledger
    forged = _raw_step(net, "bureau", "city-a", step)
    assert forged.status_code == 409 and forged.json()["error"]["code"] == "BAD_SESSION"
    # a train round whose model is not the one on the ledger (nothing recorded yet)
    nodes = {o: load_identity(net.root / o / "keys" / "node.pem").key_id for o in CITIES}
    train = StepRequest(
        r.tx_id,
        "train",
        1,
        0,
        np.zeros(4).tobytes(),
        clients={o: i + 1 for i, o in enumerate(CITIES)},
        nodes=nodes,
        mean=[0.0] * 3,
        scale=[1.0] * 3,
        total_rows=10,
    )
    wrong = _raw_step(net, "bureau", "city-a", pack_step(train))
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "MODEL_NOT_RECORDED"
    sdk.finish_run(analyst.ledger, analyst.identity, r.tx_id, output_digest=None, status="cancelled")


def test_canaries_never_reach_the_coordinator_the_ledger_or_the_wire(
    net: LocalNetwork, world: dict[str, Any]
) -> None:
    wire = (net.root.parent / "wire.bin").read_bytes()
    assert len(wire) > 10_000  # the runs above exchanged their rounds
    canaries = [CANARY_NAME.encode(), str(CANARY_VALUE).encode(), np.float64(CANARY_VALUE).tobytes()]
    for i in range(3):  # every row of every city, as the float64 bytes of its features
        for row in _rows(i)[1:40]:
            canaries.append(np.array(row[1:4], dtype="<f8").tobytes())
    assert str(CANARY_VALUE).encode() in (net.root / "city-b" / "data" / "records.csv").read_bytes()
    assert_absent(canaries, receiving_side(net, "bureau"))


def _digests(analyst: Client, task: str) -> list[str]:
    t = analyst.query(f"task/{task}")
    return [analyst.query(f"dataset/{i['dataset']}")["versions"][-1]["content_digest"] for i in t["inputs"]]


def _raw_step(net: LocalNetwork, signer_org: str, to_org: str, body: bytes) -> httpx.Response:
    key = load_identity(net.root / signer_org / "keys" / "node.pem")
    headers = sign_request(key, "POST", "/v1/fl/steps", "", body) | {
        "Content-Type": "application/octet-stream"
    }
    return httpx.post(net.url(to_org) + "/v1/fl/steps", content=body, headers=headers, verify=net.verify())


def _wait(analyst: Client, run: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status: dict[str, Any] = analyst.call("GET", f"/v1/fl/runs/{run}")
        if status["status"] in ("done", "failed") or time.monotonic() > deadline:
            return status
        time.sleep(0.3)


def test_an_owner_reviews_the_metrics_and_approves_in_the_web_console(
    net: LocalNetwork, world: dict[str, Any], tmp_path: Path
) -> None:
    from confide.console.browser import chromium

    analyst = world["analyst"]
    out = run_fl_task(analyst, _task(world, _grants(world)))
    net.sync()
    owner = world["owners"]["city-a"]
    owner.identity.save(tmp_path / "owner.pem")
    analyst.identity.save(tmp_path / "analyst.pem")
    with chromium("en-US") as b:
        b.sign_in(net.console_url("city-a"), tmp_path / "owner.pem")
        b.go(f"#/run/{out['run']}", "run")
        rounds = b.by("fl-rounds").find_elements("css selector", "tbody tr")
        assert len(rounds) == 4  # set-up and three training rounds, from the ledger
        assert out["metrics"]["val_auc"] in b.by("release-metrics").text
        review = b.by("owner-review")
        b.click("release-approve", review)
        b.expect_ok(review)
        for org in ("city-b", "city-c"):
            o = world["owners"][org]
            sdk.decide_release(o.ledger, o.identity, out["run"], f"{org}/water/records")
        net.sync()
        b.sign_in(net.console_url("bureau"), tmp_path / "analyst.pem")
        b.go(f"#/run/{out['run']}", "run")
        b.click("get-result")
        assert b.wait(b.sel("model-digest"), 30).get_attribute("class") == "good"
        errors = b.console_errors()
    assert errors == []
    assert analyst.query(f"release/{out['run']}")["status"] == "released"
