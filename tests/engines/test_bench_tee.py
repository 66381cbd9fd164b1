"""``confide bench tee`` end to end on a small table: real enclave process, same answer as plain DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from confide.engines.tee.bench import credit_codes, party_batch
from confide.interfaces.cli import app

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def uscc_valid(code: str) -> bool:
    """GB 32100-2015, written from the standard: C18 = 31 - (sum Ci * Wi mod 31), 31 -> 0."""
    total = sum(CHARSET.index(ch) * w for ch, w in zip(code[:17], WEIGHTS, strict=True))
    return len(code) == 18 and code[17] == CHARSET[(31 - total % 31) % 31]


def test_bench_tee_prints_json_last(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "tee", "--rows", "20000", "--workdir", str(tmp_path)])

    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert any("generated power 20,000/20,000 rows" in line for line in lines)
    last = json.loads(lines[-1])
    keys = {"rows_per_party", "parties", "enclave_seconds", "plain_seconds", "ratio", "peak_rss_mb"}
    keys |= {"plain_peak_rss_mb", "output_rows", "output_digest", "results_match", "phases"}
    assert keys <= set(last)
    assert last["rows_per_party"] == 20_000 and last["parties"] == 3
    assert last["results_match"] is True and 0 < last["output_rows"] <= 200
    assert last["ratio"] > 0 and last["enclave_seconds"] > 0 and last["plain_seconds"] > 0
    assert last["ratio"] == pytest.approx(last["enclave_seconds"] / last["plain_seconds"], rel=0.05)
    assert last["peak_rss_mb"] > 0 and last["plain_peak_rss_mb"] > 0 and last["tee_type"] == "simulated"
    assert list(tmp_path.iterdir()) == []  # the generated files are gone


def test_parties_share_keys_with_valid_check_characters() -> None:
    rows = 5000
    codes = {p: set(party_batch(p, 0, rows, rows).column("credit_code").to_pylist()) for p in "abc"}

    assert all(len(found) == rows for found in codes.values())  # one row per entity, none twice
    assert len(codes["a"] & codes["b"] & codes["c"]) == rows * 8 // 10
    assert all(uscc_valid(code) for code in codes["a"] | codes["b"] | codes["c"])
    assert party_batch("b", 100, 50, rows).equals(party_batch("b", 0, 200, rows).slice(100, 50))
    first = party_batch("a", 0, rows, rows).column("credit_code").to_pylist()
    assert first != sorted(first) and credit_codes(pa.array([7], pa.int64()))[0].as_py() in codes["a"]
