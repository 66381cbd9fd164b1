"""``confide bench scheduler`` as a user runs it, small: every task dispatched and run, figures present."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from confide.interfaces.cli import app


def test_bench_scheduler_prints_a_json_last_line() -> None:
    result = CliRunner().invoke(app, ["bench", "scheduler", "--tasks", "300", "--lead-s", "2"])

    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["tasks"] == last["dispatched"] == last["ran"] == 300
    assert 0 <= last["dispatch_p50_ms"] <= last["dispatch_p99_ms"] < 10_000
    assert last["api_calls"] > 0 and last["api_p99_ms"] > 0 and last["api_idle_p99_ms"] > 0
