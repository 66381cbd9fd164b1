"""``confide bench tee``: one SQL query in an attested enclave vs. plain DuckDB on the same Parquet files.

Three parties (a = bank, b = tax bureau, c = power company) hold ``rows`` rows each, keyed by an
18-character unified social credit code with a valid GB 32100 check character. Party entities are
windows of ids (a: [0, N), b: [N/10, 11N/10), c: [N/5, 6N/5)), so 80% of the bank's rows join all
three, each party in its own scrambled row order. A latent risk per entity drives the bank's
defaults, the tax arrears and late power bills; revenue and consumption fall with it. Data is made
in chunks of 1 Mi rows (one row group each), one Parquet file per party. Then, each in a fresh
``spawn`` process so its ``VmHWM`` is its own:

* ``plain_seconds``: DuckDB runs :data:`SQL` over views ``a``, ``b``, ``c`` of the Parquet files;
* ``enclave_seconds``, from attestation to sealed result: :class:`EnclaveHost` launches and quotes
  the enclave; each owner verifies the quote (root, MRENCLAVE of this SQL, MRSIGNER, REPORT_DATA,
  block hash) and streams its file through the trusted channel (Parquet read, Arrow IPC, AES-GCM,
  its own input digest), in one producer thread per owner. The host relays the inputs one after
  the other (its protocol takes one input at a time; the other owners prefetch a few frames). The
  enclave decrypts and checks every frame, runs the same SQL in DuckDB over the Arrow tables and
  seals the result. ``peak_rss_mb`` is the enclave process's ``VmHWM``, read before it exits;
  ``owners_peak_rss_mb`` that of the process running the owners and the host.

The result is then released to the bench (approved, not timed) and compared with the plain one by
the SHA-256 of the Arrow IPC stream of the sorted table (:func:`result_digest`). The aggregates are
integer sums, counts and averages of integers, so both paths give the same bits.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import queue
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .wire import arrow_ipc, input_digest

__all__ = ["SQL", "credit_codes", "party_batch", "result_digest", "run_tee_bench", "write_party"]

SQL = """SELECT b.revenue_cents // 1000000000 AS revenue_band, c.kwh // 16384 AS usage_band,
    count(*) AS firms, CAST(sum(a.loan_cents) AS BIGINT) AS loan_cents,
    CAST(sum(a.defaulted) AS BIGINT) AS defaults, avg(a.overdue_days) AS avg_overdue_days,
    CAST(sum(b.arrears_cents) AS BIGINT) AS arrears_cents, avg(c.late_months) AS avg_late_months
FROM a JOIN b USING (credit_code) JOIN c USING (credit_code)
GROUP BY 1, 2 ORDER BY 1, 2"""
PARTIES = {"a": "bank", "b": "tax", "c": "power"}
_CHUNK_ROWS, _STRIDE, _CODE_MUL = 1 << 20, 1_000_000_007, 3_797_292_749
_BATCH_ROWS, _PREFETCH = 1 << 16, 8
_CHECK = pa.array(list("0123456789ABCDEFGHJKLMNPQRTUWXY"))
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)  # GB 32100-2015
Progress = Callable[[str], None]


def _i64(v: int) -> pa.Scalar:
    return pa.scalar(v, pa.int64())


def _bits(x: pa.Array, shift: int, width: int) -> pa.Array:
    return pc.bit_wise_and(pc.shift_right(x, _i64(shift)), _i64((1 << width) - 1))


def _shr(x: pa.Array, n: int) -> pa.Array:
    return pc.shift_right(x, _i64(n))


def _mix(e: pa.Array, salt: int) -> pa.Array:
    """62 pseudo-random bits per entity id (wrapping multiplies and xor-shifts)."""
    x = pc.multiply(pc.bit_wise_xor(e, _i64(salt)), _i64(-7046029254386353131))
    x = pc.multiply(pc.bit_wise_xor(x, _shr(x, 29)), _i64(6364136223846793005))
    return pc.bit_wise_and(pc.bit_wise_xor(x, _shr(x, 32)), _i64((1 << 62) - 1))


def credit_codes(e: pa.Array) -> pa.Array:
    """``"91"`` + 15 digits (a bijection of the id) + the GB 32100 check character, per entity id."""
    v = pc.modulo(pc.multiply(e, _i64(_CODE_MUL)), _i64(10**15))
    total = pc.add(pc.multiply(v, _i64(0)), _i64(9 * _WEIGHTS[0] + 1 * _WEIGHTS[1]))
    for k in range(15):
        digit = pc.modulo(pc.divide(v, _i64(10 ** (14 - k))), _i64(10))
        total = pc.add(total, pc.multiply(digit, _i64(_WEIGHTS[k + 2])))
    check = pc.modulo(pc.subtract(_i64(31), pc.modulo(total, _i64(31))), _i64(31))
    digits = pc.utf8_lpad(pc.cast(v, pa.string()), width=15, padding="0")
    return pc.binary_join_element_wise(pa.scalar("91"), digits, pc.take(_CHECK, check), "")


def _bank(risk: pa.Array, safe: pa.Array, y: pa.Array) -> dict[str, pa.Array]:
    defaulted = pc.less(_bits(y, 27, 10), _shr(pc.multiply(risk, risk), 11))
    return {
        "loan_cents": pc.multiply(pc.add(_bits(y, 0, 20), _i64(1)), _i64(1000)),
        "overdue_days": pc.cast(_shr(pc.multiply(risk, _bits(y, 20, 7)), 10), pa.int32()),
        "defaulted": pc.cast(defaulted, pa.int8()),
    }


def _tax(risk: pa.Array, safe: pa.Array, y: pa.Array) -> dict[str, pa.Array]:
    revenue = pc.add(_bits(y, 0, 32), pc.shift_left(safe, _i64(23)))
    return {
        "revenue_cents": revenue,
        "tax_paid_cents": pc.divide(pc.multiply(revenue, pc.add(_bits(y, 32, 5), _i64(1))), _i64(1000)),
        "arrears_cents": pc.multiply(_bits(y, 38, 24), pc.cast(pc.greater(risk, _i64(800)), pa.int64())),
    }


def _power(risk: pa.Array, safe: pa.Array, y: pa.Array) -> dict[str, pa.Array]:
    kwh = pc.add(_bits(y, 0, 16), pc.shift_left(safe, _i64(6)))
    return {
        "kwh": kwh,
        "peak_kw": pc.cast(pc.add(_shr(kwh, 7), _bits(y, 16, 6)), pa.int32()),
        "late_months": pc.cast(_shr(pc.multiply(risk, _bits(y, 22, 4)), 10), pa.int8()),
    }


_COLUMNS = {"a": _bank, "b": _tax, "c": _power}


def party_batch(party: str, start: int, n: int, rows: int) -> pa.RecordBatch:
    """Rows ``start .. start+n`` of ``party``'s ``rows``; row i is entity (i * stride mod rows) + offset."""
    i = pa.array(range(start, start + n), pa.int64())
    offset = {"a": 0, "b": rows // 10, "c": rows // 5}[party]
    e = pc.add(pc.modulo(pc.multiply(i, _i64(_STRIDE)), _i64(rows)), _i64(offset))
    risk, y = _bits(_mix(e, 0), 0, 10), _mix(e, ord(party))
    columns = _COLUMNS[party](risk, pc.subtract(_i64(1023), risk), y)
    return pa.record_batch({"credit_code": credit_codes(e), **columns})


def write_party(path: Path, party: str, rows: int, progress: Progress) -> int:
    """Write ``party``'s deterministic Parquet file in chunks; returns its size in bytes."""
    if not 0 < rows < _STRIDE:
        raise ValueError(f"rows must be in [1, {_STRIDE})")
    with pq.ParquetWriter(path, party_batch(party, 0, 1, rows).schema) as writer:
        for start in range(0, rows, _CHUNK_ROWS):
            writer.write_batch(party_batch(party, start, min(_CHUNK_ROWS, rows - start), rows))
            done = min(start + _CHUNK_ROWS, rows)
            if done % (4 * _CHUNK_ROWS) == 0 or done == rows:
                progress(f"  generated {PARTIES[party]} {done:,}/{rows:,} rows")
    return path.stat().st_size


def result_digest(table: pa.Table) -> str:
    """SHA-256 hex of the Arrow IPC stream of ``table`` sorted by every column, in one chunk."""
    canonical = table.sort_by([(name, "ascending") for name in table.column_names])
    return hashlib.sha256(arrow_ipc(canonical.combine_chunks().replace_schema_metadata(None))).hexdigest()


def vm_hwm_mb(pid: int | str = "self") -> float | None:
    """A process's RSS high-water mark (Linux ``VmHWM``), or ``None`` where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _plain(paths: dict[str, str], say: Progress) -> dict[str, Any]:
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect(":memory:")
    try:
        for alias, path in paths.items():
            quoted = path.replace("'", "''")
            con.execute(f"CREATE VIEW {alias} AS SELECT * FROM read_parquet('{quoted}')")
        table = con.execute(SQL).fetch_arrow_table()
    finally:
        con.close()
    seconds = time.perf_counter() - t0
    say(f"  plain: {seconds:.2f} s, {table.num_rows} output rows")
    return {"seconds": seconds, "rows": table.num_rows, "digest": result_digest(table)}
