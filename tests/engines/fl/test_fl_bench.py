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
