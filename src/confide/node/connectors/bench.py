"""``confide bench catalog``: registering a big CSV through the connector vs. plain Arrow reading it.

A deterministic CSV of ``rows`` rows is written to a temp folder (columns: an
18-character enterprise code, two ints, a float, a date, a category; about
61 bytes a row). Then, each in a fresh ``spawn`` process so that peak RSS
(``VmHWM``) is the step's own:

* ``baseline_seconds``: :func:`pyarrow.csv.open_csv` with default options,
  iterating every batch — the cost of just reading the file;
* ``seconds``: :meth:`CsvConnector.describe` — schema, row count, null
  presence and the chunked Merkle content digest of the raw bytes.

Each is run ``repeat`` times and the fastest run is reported; the page cache is
warm for both (the file was just written). The target is ``ratio`` ≤ 2 and a
peak RSS that does not grow with the file.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

__all__ = ["measure_step", "run_catalog_bench", "write_bench_csv"]

_SECTORS = ["retail", "energy", "finance", "agriculture", "logistics", "health", "telecom", "manufacturing"]
_CHECK = list("0123456789ABCDEFGHJKLMNPQRTUWXY")
_CHUNK_ROWS = 500_000


def _i64(v: int) -> pa.Scalar:
    return pa.scalar(v, pa.int64())


def _bits(x: pa.Array, shift: int, mask: int) -> pa.Array:
    return pc.bit_wise_and(pc.shift_right(x, _i64(shift)), _i64(mask))


def _chunk(start: int, n: int) -> pa.RecordBatch:
    """Rows ``start .. start+n``: a 64-bit mix of the row number (wrapping multiply) feeds every column."""
    x = pc.multiply(pa.array(range(start, start + n), pa.int64()), _i64(-7046029254386353131))
    x = pc.multiply(pc.bit_wise_xor(x, pc.shift_right(x, _i64(29))), _i64(6364136223846793005))
    x = pc.bit_wise_and(x, _i64((1 << 62) - 1))
    digits = pc.utf8_lpad(pc.cast(_bits(x, 0, (1 << 49) - 1), pa.string()), width=15, padding="0")
    check = pc.take(pa.array(_CHECK), _bits(x, 50, 15))
    code = pc.binary_join_element_wise(pa.scalar("91"), digits, check, "")
    founded = pc.cast(pc.cast(pc.add(_bits(x, 20, 16383), _i64(3653)), pa.int32()), pa.date32())
    return pa.record_batch({
        "credit_code": code,
        "employees": pc.add(_bits(x, 3, 4095), _i64(1)),
        "revenue": pc.divide(pc.cast(_bits(x, 15, (1 << 27) - 1), pa.float64()), 100.0),
        "year": pc.add(_bits(x, 42, 15), _i64(2010)),
        "founded": founded,
        "sector": pc.take(pa.array(_SECTORS), _bits(x, 54, 7)),
    })  # fmt: skip


def write_bench_csv(path: Path, rows: int, progress: Callable[[str], None] = print) -> int:
    """Write the deterministic bench CSV; returns its size in bytes."""
    first = _chunk(0, min(rows, 1) or 1)
    with pcsv.CSVWriter(path, first.schema) as writer:
        for start in range(0, rows, _CHUNK_ROWS):
            writer.write_batch(_chunk(start, min(_CHUNK_ROWS, rows - start)))
            done = min(start + _CHUNK_ROWS, rows)
            if done % 2_000_000 == 0 or done == rows:
                progress(f"  generated {done:,}/{rows:,} rows")
    return path.stat().st_size


def _baseline(path: str) -> dict[str, Any]:
    n = sum(b.num_rows for b in pcsv.open_csv(path))
    return {"rows": n}


def _describe(path: str) -> dict[str, Any]:
    from . import open_connector

    return open_connector({"type": "csv", "path": path}).describe().to_json()


def _peak_rss_mb() -> float:
    """This process's RSS high-water mark. Linux ``VmHWM`` belongs to the address space made at
    exec; ``ru_maxrss`` would also count the parent's RSS at fork time (kept across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; bytes on macOS


def _child(step: str, path: str, out: Any) -> None:
    fn = _baseline if step == "baseline" else _describe
    t0 = time.perf_counter()
    result = fn(path)
    seconds = time.perf_counter() - t0
    out.put({"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "result": result})


def measure_step(step: str, path: Path) -> dict[str, Any]:
    """Run ``baseline`` or ``describe`` on ``path`` in a fresh process; seconds, peak RSS, result."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_child, args=(step, str(path), out))
    proc.start()
    try:
        msg: dict[str, Any] = out.get(timeout=3600)
    finally:
        proc.join(timeout=60)
    return msg


def run_catalog_bench(*, rows: int, workdir: Path | None = None, repeat: int = 2) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-able figures (printed last by the CLI)."""
    with tempfile.TemporaryDirectory(prefix="confide-bench-", dir=workdir) as tmp:
        path = Path(tmp) / "enterprises.csv"
        print(f"writing a deterministic CSV of {rows:,} rows to {path} ...", flush=True)
        size = write_bench_csv(path, rows, lambda s: print(s, flush=True))
        base, conn = [], []
        for i in range(max(1, repeat)):
            print(f"run {i + 1}/{repeat}: baseline (pyarrow open_csv) ...", flush=True)
            base.append(measure_step("baseline", path))
            print(f"run {i + 1}/{repeat}: connector describe() (schema, rows, digest) ...", flush=True)
            conn.append(measure_step("describe", path))
    b = min(base, key=lambda m: m["seconds"])
    c = min(conn, key=lambda m: m["seconds"])
    profile = c["result"]
    if profile["row_count"] != rows or b["result"]["rows"] != rows:
        raise RuntimeError(f"row count mismatch: {profile['row_count']} / {b['result']['rows']} != {rows}")
    return {
        "bench": "catalog",
        "rows": rows,
        "file_mb": round(size / 2**20, 1),
        "seconds": round(c["seconds"], 3),
        "baseline_seconds": round(b["seconds"], 3),
        "ratio": round(c["seconds"] / b["seconds"], 3),
        "peak_rss_mb": round(max(m["peak_rss_mb"] for m in conn), 1),
        "baseline_peak_rss_mb": round(max(m["peak_rss_mb"] for m in base), 1),
        "mb_per_s": round(size / 2**20 / c["seconds"], 1),
        "content_digest": profile["content_digest"],
        "schema": {col["name"]: col["type"] for col in profile["schema"]},
        "repeat": repeat,
        "cores": os.cpu_count(),
    }
