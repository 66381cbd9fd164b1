"""``confide bench psi`` as a user runs it, on a small set: a correct intersection and the JSON last line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from confide.interfaces.cli import app


def test_bench_psi_prints_a_correct_json_last_line() -> None:
    result = CliRunner().invoke(app, ["bench", "psi", "--n", "2000", "--workers", "1"])

    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["correct"] is True and last["intersection"] == 1000 and last["n"] == 2000
    assert last["scalar_mults_per_s"] > 1000 and last["efficiency"] > 0
