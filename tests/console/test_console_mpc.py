"""The marketing scenario's segment statistics in the browser: the requester's console gets both
parties' released shares, each encrypted to the requester's key (the bank's node collects the
telecom's share with its node key and cannot open either), opens them, checks them against the run's
commitment, reveals and finalizes the statistics in JavaScript and draws the segment heat map —
the same numbers as the Python SDK, suppressed cells included."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from confide.console.browser import chromium
from confide.console.stage import MarketingStage, start_marketing_stage
from confide.console.walkthrough import marketing_walkthrough
from confide.crypto import load_identity
from confide.crypto.canonical import canonical_bytes
from confide.crypto.httpsig import sign_request
from confide.interfaces.mpc import fetch_mpc_result, segment_table

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarketingStage]:
    s = start_marketing_stage(tmp_path_factory.mktemp("console-mpc") / "consortium", customers=2000)
    yield s
    s.net.stop_all()


def test_the_segment_heat_map_shows_the_same_cells_as_the_sdk(stage: MarketingStage) -> None:
    analyst = stage.people["analyst"]
    clients = {"bank": analyst, "telecom": stage.people["analyst@telecom"]}
    expected = segment_table(fetch_mpc_result(clients, stage.run), analyst.query(f"task/{stage.task}"))
    with chromium("en-US") as b:
        b.sign_in(stage.console("bank"), stage.key("analyst"))
        b.go(f"#/run/{stage.run}", "run")
        b.click("get-result")
        chart = b.wait(b.sel("segments-count") + " " + b.sel("chart-heatmap"), 60)
        cells = {
            (int(c.get_attribute("data-row") or -1), int(c.get_attribute("data-col") or -1)): c.text
            for c in chart.find_elements("css selector", "[data-row]")
        }
        errors = b.console_errors()
    assert errors == []
    assert len(cells) == 16
    suppressed = 0
    for cell in expected:
        shown = cells[(cell["asset_tier"], cell["spend_tier"])].replace(",", "")
        if cell.get("suppressed"):
            suppressed += 1
            assert shown == "—"
        else:
            assert shown == str(cell["count"])
    assert 0 < suppressed < 16  # the scenario's minimum cell size blanks some segments


def test_a_node_relays_shares_only_encrypted_to_the_requesters_key(stage: MarketingStage) -> None:
    """The telecom's node gives the bank's node (the requester's org) only a box; another org's node
    gets nothing; the requester itself still gets its plain share, as the SDK uses it."""
    body = canonical_bytes({"min_height": 0})
    path = f"/v1/mpc/shares/{stage.run}"

    def post(signer_org: str) -> httpx.Response:
        key = load_identity(stage.net.root / signer_org / "keys" / "node.pem")
        headers = sign_request(key, "POST", path, "", body) | {"Content-Type": "application/json"}
        return httpx.post(
            stage.net.url("telecom") + path, content=body, headers=headers, verify=stage.net.verify()
        )

    boxed = post("bank").json()
    assert "box" in boxed and "share" not in boxed
    assert post("exchange").status_code == 404  # the dealer's node is not the requester's org
    plain = stage.people["analyst@telecom"].call("POST", path, {"min_height": 0})
    assert "share" in plain and "box" not in plain
    assert bytes.fromhex(plain["share"]).hex() not in boxed["box"]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarketingStage]:
    s = start_marketing_stage(
        tmp_path_factory.mktemp("console-mk") / "consortium", customers=2000, runs=False
    )
    yield s
    s.net.stop_all()


def test_the_marketing_scenario_created_run_and_released_in_the_browser(fresh: MarketingStage) -> None:
    """psi task (both keep the intersection) -> mpc joint statistics aligned on it -> both owners
    approve -> the segment heat map, all through the console; the SDK reads the same cells."""
    with chromium("zh-CN") as b:
        w = marketing_walkthrough(fresh, b)
        errors = b.console_errors()
    analyst = fresh.people["analyst"]
    mpc_run = analyst.query(f"run/{w.mpc_run}")
    task = analyst.query(f"task/{mpc_run['task']}")
    assert task["params"]["psi_run"] == w.psi_run and task["params"]["dealer"] == "exchange"
    assert analyst.query(f"release/{w.mpc_run}")["status"] == "released"
    clients = {"bank": analyst, "telecom": fresh.people["analyst@telecom"]}
    expected = segment_table(fetch_mpc_result(clients, w.mpc_run), task)
    for cell in expected:
        shown = w.cells[(cell["asset_tier"], cell["spend_tier"])].replace(",", "")
        assert shown == ("—" if cell.get("suppressed") else str(cell["count"]))
    assert [e for e in errors if " 403 " not in e] == []
