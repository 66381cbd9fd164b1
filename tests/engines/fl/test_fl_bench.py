from __future__ import annotations

import pytest

from confide.engines.fl.bench import run_bench
from confide.engines.fl.errors import TooManyDropouts


def test_bench_small() -> None:
    out = run_bench(5, 3000, 0.2, 3)
    assert set(out) >= {
        "clients",
        "params",
        "dropout",
        "secure_round_seconds",
        "plain_round_seconds",
        "ratio",
        "dropped",
        "exact",
    }
    assert out["exact"] is True
    assert out["clients"] == 5 and out["params"] == 3000 and out["dropped"] == 1
    assert out["secure_round_seconds"] > 0 and out["plain_round_seconds"] > 0
    # 4 survivors: each its self mask + 4 pairwise (3 survivors, 1 dropped); the server 4 self masks
    # and the 4 masks the survivors shared with the dropped client
    assert out["mask_streams"] == 4 * 5 + 4 + 4 and out["ratio_floor"] >= 1
    assert out["parallel_secure_seconds"] <= out["secure_round_seconds"]
    assert out["parallel_plain_seconds"] <= out["plain_round_seconds"]


def test_round_clock_counts_the_slowest_client_per_step_and_every_server_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from confide.engines.fl import bench

    ticks = iter([0.0, 1.0, 1.0, 3.0, 3.0, 3.5, 3.5, 4.0, 4.0, 4.25])
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(ticks))
    clock = bench.RoundClock()
    assert clock.client("mask", 1, lambda: "a") == "a"  # 1.0 s
    clock.client("mask", 2, lambda: None)  # 2.0 s
    clock.client("sign", 1, lambda: None)  # 0.5 s
    clock.server(lambda: None)  # 0.5 s
    clock.server(lambda: None)  # 0.25 s
    monkeypatch.undo()
    assert clock.parallel_seconds == 2.0 + 0.5 + 0.75
    assert clock.serial_seconds == 1.0 + 2.0 + 0.5 + 0.75


def test_bench_aborts_when_too_many_drop() -> None:
    with pytest.raises(TooManyDropouts):
        run_bench(5, 100, 0.6, 3)


def test_confide_bench_fl_prints_one_json_line_last() -> None:
    import json

    from typer.testing import CliRunner

    from confide.interfaces.cli import app

    args = ["bench", "fl", "--clients", "5", "--params", "2000", "--dropout", "0.2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert last["exact"] is True and last["dropped"] == 1 and last["ratio"] > 0
    assert {"secure_round_seconds", "plain_round_seconds", "ratio"} <= set(last)
