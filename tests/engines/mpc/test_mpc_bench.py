from __future__ import annotations

from confide.engines.mpc.bench import bench_mpc


def test_bench_small() -> None:
    out = bench_mpc(5000)
    assert set(out) >= {"rows", "seconds", "plain_seconds", "ratio", "max_abs_error"}
    assert out["rows"] == 5000 and out["seconds"] > 0
    assert out["max_rel_error"] < 1e-3


def test_bench_mpc_command_prints_seconds_and_plain_seconds() -> None:
    import json

    from typer.testing import CliRunner

    from confide.interfaces.cli import app

    result = CliRunner().invoke(app, ["bench", "mpc", "--rows", "2000"])

    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["rows"] == 2000 and last["seconds"] > 0 and last["plain_seconds"] > 0
