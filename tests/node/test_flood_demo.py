"""``confide demo flood`` end to end (a short series and few rounds): five nodes as processes, the model
released after the four cities approve, a risk map per city, the JSON last line."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from confide.interfaces.cli import app


def test_demo_flood_releases_the_model_and_draws_a_map_per_city(tmp_path: Path) -> None:
    work = tmp_path / "flood"
    result = CliRunner().invoke(
        app, ["demo", "flood", "--workdir", str(work), "--days", "60", "--rounds", "3", "--model", "logreg"]
    )
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert last["released"] is True and last["state_roots_agree"] is True and last["rounds"] == 3
    assert len(last["participants"]) == 4 and all(n > 10_000 for n in last["rows"].values())
    assert last["val_auc_federated"] > 0.8 and abs(last["val_auc_federated"] - last["val_auc_pooled"]) < 0.05
    for path in last["maps"].values():
        root = ET.parse(path).getroot()
        assert root.tag.endswith("svg") and len(root.findall(".//{*}rect")) > 10
    assert "round   3" in result.output and "centralized: pooled" in result.output
