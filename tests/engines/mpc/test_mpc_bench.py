from __future__ import annotations

from confide.engines.mpc.bench import bench_mpc


def test_bench_small() -> None:
    out = bench_mpc(5000)
    assert set(out) >= {"rows", "seconds", "plain_seconds", "ratio", "max_abs_error"}
    assert out["rows"] == 5000 and out["seconds"] > 0
    assert out["max_rel_error"] < 1e-3
