"""``confide bench tee``: one SQL query in an attested enclave vs. plain DuckDB on the same Parquet files.

Three parties (a = bank, b = tax bureau, c = power company) hold ``rows`` rows each, keyed by an
18-character unified social credit code (valid GB 32100 check character): a over entities [0, N),
b over [N/10, 11N/10), c over [N/5, 6N/5), each in its own scrambled order. A latent risk per
entity drives defaults, arrears and late bills; revenue and consumption fall with it. Files are
written in chunks of 1 Mi rows. Each measured step runs in a fresh ``spawn`` process:

* ``plain_seconds``: DuckDB runs :data:`SQL` over views ``a``, ``b``, ``c`` of the Parquet files;
* ``enclave_seconds``, attestation to sealed result: the host launches and quotes the enclave; the
  owners verify the quote, then stream (a thread each) the columns their grants release (what the
  SQL reads) through the trusted channel, relayed one input after the other; the enclave runs the
  same SQL in DuckDB and seals the result. ``peak_rss_mb``: the enclave process's ``VmHWM``. The
  output is then released (not timed) and compared by :func:`result_digest` (integer aggregates).

``enclave_cpu_seconds`` (the owners', the host's and the enclave's CPU over ``enclave_seconds``) and
``plain_cpu_seconds`` show where the time goes on a machine whose cores all parties share;
``ratio_floor`` = ``enclave_cpu_seconds`` / cores / ``plain_seconds``, the ratio the enclave path
would reach if it kept every core busy throughout.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing as mp
import os
import queue
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .attestation import AttestationKey, SimulatedRoot, report_data, verify_quote
from .channel import ChannelSender, TransferContext
from .host import EnclaveHost, EnclaveInfo, RuntimeBuild, measure
from .sealing import SealingRoot
from .wire import InputDigest, arrow_ipc, open_release

__all__ = ["GRANTS", "SQL", "credit_codes", "party_batch", "result_digest", "run_tee_bench", "write_party"]

SQL = """SELECT b.revenue_cents // 1000000000 AS revenue_band, c.kwh // 16384 AS usage_band,
    count(*) AS firms, CAST(sum(a.loan_cents) AS BIGINT) AS loan_cents,
    CAST(sum(a.defaulted) AS BIGINT) AS defaults, avg(a.overdue_days) AS avg_overdue_days,
    CAST(sum(b.arrears_cents) AS BIGINT) AS arrears_cents, avg(c.late_months) AS avg_late_months
FROM a JOIN b USING (credit_code) JOIN c USING (credit_code)
GROUP BY 1, 2 ORDER BY 1, 2"""
PARTIES = {"a": "bank", "b": "tax", "c": "power"}
GRANTS = {  # the columns each owner releases to this task: what the SQL reads
    "a": ["credit_code", "loan_cents", "overdue_days", "defaulted"],
    "b": ["credit_code", "revenue_cents", "arrears_cents"],
    "c": ["credit_code", "kwh", "late_months"],
}
_CHUNK_ROWS, _BATCH_ROWS, _FRAMES_AHEAD, _BATCHES_AHEAD = 1 << 20, 1 << 16, 8, 4
_STRIDE, _CODE_MUL = 1_000_000_007, 3_797_292_749  # a prime > rows; coprime with 10
_CHECK = pa.array(list("0123456789ABCDEFGHJKLMNPQRTUWXY"))
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)  # GB 32100-2015
Progress = Callable[[str], None]


def _bits(x: pa.Array, shift: int, width: int) -> pa.Array:
    return pc.bit_wise_and(pc.shift_right(x, shift), (1 << width) - 1)


def _mix(e: pa.Array, salt: int) -> pa.Array:
    """62 pseudo-random bits per entity id (wrapping multiplies and xor-shifts)."""
    x = pc.multiply(pc.bit_wise_xor(e, salt), -7046029254386353131)
    x = pc.multiply(pc.bit_wise_xor(x, pc.shift_right(x, 29)), 6364136223846793005)
    return _bits(pc.bit_wise_xor(x, pc.shift_right(x, 32)), 0, 62)


def credit_codes(e: pa.Array) -> pa.Array:
    """``"91"`` + 15 digits (a bijection of the id) + the GB 32100 check character, per entity id."""
    v = pc.modulo(pc.multiply(e, _CODE_MUL), 10**15)
    total = pc.add(pc.multiply(v, 0), 9 * _WEIGHTS[0] + 1 * _WEIGHTS[1])
    for k in range(15):
        digit = pc.modulo(pc.divide(v, 10 ** (14 - k)), 10)
        total = pc.add(total, pc.multiply(digit, _WEIGHTS[k + 2]))
    check = pc.modulo(pc.subtract(31, pc.modulo(total, 31)), 31)
    digits = pc.utf8_lpad(pc.cast(v, pa.string()), width=15, padding="0")
    return pc.binary_join_element_wise(pa.scalar("91"), digits, pc.take(_CHECK, check), "")


def _columns(party: str, risk: pa.Array, y: pa.Array) -> dict[str, pa.Array]:
    safe = pc.subtract(1023, risk)
    if party == "a":
        defaulted = pc.less(_bits(y, 27, 10), pc.shift_right(pc.multiply(risk, risk), 11))
        loan = pc.multiply(pc.add(_bits(y, 0, 20), 1), 1000)
        overdue = pc.cast(pc.shift_right(pc.multiply(risk, _bits(y, 20, 7)), 10), pa.int32())
        return {"loan_cents": loan, "overdue_days": overdue, "defaulted": pc.cast(defaulted, pa.int8())}
    if party == "b":
        revenue = pc.add(_bits(y, 0, 32), pc.shift_left(safe, 23))
        paid = pc.divide(pc.multiply(revenue, pc.add(_bits(y, 32, 5), 1)), 1000)
        arrears = pc.multiply(_bits(y, 38, 24), pc.cast(pc.greater(risk, 800), pa.int64()))
        return {"revenue_cents": revenue, "tax_paid_cents": paid, "arrears_cents": arrears}
    kwh = pc.add(_bits(y, 0, 16), pc.shift_left(safe, 6))
    peak = pc.cast(pc.add(pc.shift_right(kwh, 7), _bits(y, 16, 6)), pa.int32())
    late = pc.cast(pc.shift_right(pc.multiply(risk, _bits(y, 22, 4)), 10), pa.int8())
    return {"kwh": kwh, "peak_kw": peak, "late_months": late}


def party_batch(party: str, start: int, n: int, rows: int) -> pa.RecordBatch:
    """Rows ``start .. start+n`` of ``party``'s ``rows``; row i is entity (i * stride mod rows) + offset."""
    i = pa.array(range(start, start + n), pa.int64())
    e = pc.add(pc.modulo(pc.multiply(i, _STRIDE), rows), {"a": 0, "b": rows // 10, "c": rows // 5}[party])
    columns = _columns(party, _bits(_mix(e, 0), 0, 10), _mix(e, ord(party)))
    return pa.record_batch({"credit_code": credit_codes(e), **columns})


def write_party(path: Path, party: str, rows: int, say: Progress) -> int:
    """Write ``party``'s deterministic Parquet file in chunks; returns its size in bytes."""
    if not 0 < rows < _STRIDE:
        raise ValueError(f"rows must be in [1, {_STRIDE})")
    with pq.ParquetWriter(path, party_batch(party, 0, 1, rows).schema) as writer:
        for start in range(0, rows, _CHUNK_ROWS):
            writer.write_batch(party_batch(party, start, min(_CHUNK_ROWS, rows - start), rows))
            done = min(start + _CHUNK_ROWS, rows)
            if done % (4 * _CHUNK_ROWS) == 0 or done == rows:
                say(f"  generated {PARTIES[party]} {done:,}/{rows:,} rows")
    return path.stat().st_size


def result_digest(table: pa.Table) -> str:
    """SHA-256 hex of the Arrow IPC stream of ``table`` sorted by every column, in one chunk."""
    canonical = table.sort_by([(name, "ascending") for name in table.column_names])
    return hashlib.sha256(arrow_ipc(canonical.combine_chunks().replace_schema_metadata(None))).hexdigest()


def vm_hwm_mb(pid: int | str = "self") -> float | None:
    """A process's RSS high-water mark in MiB (Linux ``VmHWM``), or ``None`` where it cannot be read."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return round(int(Path(f"/proc/{pid}/status").read_text().split("VmHWM:")[1].split()[0]) / 1024, 1)
    return None


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds a process (all its threads) has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _plain(paths: dict[str, str], say: Progress) -> dict[str, Any]:
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    with duckdb.connect(":memory:") as con:
        for alias, path in paths.items():
            con.read_parquet(path).create_view(alias)
        table = con.execute(SQL).fetch_arrow_table()
    seconds = time.perf_counter() - t0
    say(f"  plain: {seconds:.2f} s, {table.num_rows} output rows")
    found = {"seconds": seconds, "rows": table.num_rows, "digest": result_digest(table)}
    return found | {"cpu_seconds": cpu_seconds() - cpu0}


def _ahead(items: Iterable[Any], depth: int) -> Iterator[Any]:
    """Iterate ``items`` in a thread started now, at most ``depth`` ahead; its error re-raises here."""
    box: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)

    def produce() -> None:
        try:
            for item in items:
                box.put((True, item))
            box.put((False, None))
        except BaseException as exc:
            box.put((False, exc))

    def consume() -> Iterator[Any]:
        while (got := box.get())[0]:
            yield got[1]
        if got[1] is not None:
            raise got[1]

    threading.Thread(target=produce, daemon=True).start()
    return consume()


class _Owner:
    """One data owner's node: checks the quote, then sends the columns its grant releases."""

    def __init__(self, alias: str, path: str) -> None:
        self.alias, self.path, self.digest, self.count, self.size = alias, path, b"", 0, 0
        self.dataset, self.key_id = f"{PARTIES[alias]}/bench", f"{PARTIES[alias]}-key"

    def connect(self, quote: bytes, info: EnclaveInfo, task: str, ledger: dict[str, Any], frame: int) -> None:
        """Verify the quote against what the owner reads on the ``ledger``; key a channel to it."""
        bound = report_data(info.channel_public_key, info.result_public_key, task, ledger["block"])
        policy = {k: ledger[k] for k in ("root_public_key", "allowed_mrsigners", "min_isv_svn")}
        policy |= {"fresh_block_hashes": {ledger["block"]}, "allowed_mrenclaves": {measure(SQL)}}
        verified = verify_quote(quote, expected_report_data=bound, **policy)
        ctx = TransferContext(verified.quote_digest, task, self.dataset, self.key_id)
        self.sender = ChannelSender(info.channel_public_key, ctx, max_frame=frame)

    def frames(self) -> Iterator[bytes]:
        """The transfer's frames; meanwhile its input digest (``wire.input_digest``, without copies)."""
        # mapped, not read: no copy of the file into fresh buffers; one decoding thread per owner, as
        # the owners' threads, the host and the enclave already share the cores
        parquet, columns = pq.ParquetFile(self.path, memory_map=True), GRANTS[self.alias]
        groups = (
            parquet.iter_batches(_BATCH_ROWS, [i], columns, use_threads=False)
            for i in range(parquet.num_row_groups)
        )
        batches = _ahead((b for group in groups for b in group), _BATCHES_AHEAD)  # per group: flat memory
        digest = InputDigest()
        for frame in self.sender.send_batches(batches, pa.schema(map(parquet.schema_arrow.field, columns))):
            digest.update(frame)
            self.count, self.size = self.count + 1, self.size + len(frame)
            yield frame
        self.digest = digest.digest()


def _stream(host: EnclaveHost, owners: list[_Owner], say: Progress) -> dict[str, float]:
    """Relay each owner's frames to the enclave, one input after the other; check its input digests."""
    streams, seconds = [_ahead(owner.frames(), _FRAMES_AHEAD) for owner in owners], dict[str, float]()
    for owner, frames in zip(owners, streams, strict=True):
        t0 = time.perf_counter()
        got = host.feed(owner.dataset, frames, alias=owner.alias, sender_key_id=owner.key_id)
        if got != owner.digest:
            raise RuntimeError(f"the enclave reports another input digest for {owner.dataset}")
        seconds[owner.alias] = dt = round(time.perf_counter() - t0, 3)
        say(f"  {PARTIES[owner.alias]}: {owner.count} frames, {owner.size / 2**20:.0f} MiB in {dt:.2f} s")
    return seconds


def _enclave(paths: dict[str, str], max_frame: int, say: Progress) -> dict[str, Any]:
    root, build = SimulatedRoot.generate(), RuntimeBuild.sign(Ed25519PrivateKey.generate())
    task, block = f"bench-tee-{secrets.token_hex(6)}", secrets.token_hex(32)
    ledger: dict[str, Any] = {"root_public_key": root.public_key, "allowed_mrsigners": {build.mrsigner}}
    ledger |= {"min_isv_svn": build.isv_svn, "block": block}
    owners, requester = [_Owner(alias, path) for alias, path in paths.items()], X25519PrivateKey.generate()
    with EnclaveHost(AttestationKey.create(root), SealingRoot.generate(), build) as host:
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        quote = host.start(task, SQL, block)
        info = host.info
        assert info is not None
        for owner in owners:
            owner.connect(quote, info, task, ledger, max_frame)
        attest = time.perf_counter() - t0
        feeds = _stream(host, owners, say)
        t1 = time.perf_counter()
        result = host.run()
        seconds, run = time.perf_counter() - t0, time.perf_counter() - t1
        say(f"  enclave: {seconds:.2f} s (attest {attest:.2f}, run {run:.2f})")
        result.verify(info.result_public_key)
        peak = vm_hwm_mb(info.pid)  # before the enclave exits
        cpu = cpu_seconds() - cpu0 + cpu_seconds(info.pid)  # owners and host, and the enclave
        box = host.release(requester.public_key().public_bytes_raw(), approved=True)
    table = open_release(requester, box, task_id=task, output_digest=result.output_digest)
    phases = {"attest_seconds": round(attest, 3), "feed_seconds": feeds, "run_seconds": round(run, 3)}
    found = {"seconds": seconds, "rows": table.num_rows, "digest": result_digest(table), "peak_rss_mb": peak}
    found["cpu_seconds"] = cpu
    found |= {"frames": sum(o.count for o in owners), "channel_mb": sum(o.size for o in owners) / 2**20}
    return found | {"phases": phases, "network_isolated": info.network_isolated}


def _child(step: str, args: dict[str, Any], out: Any) -> None:
    try:
        result = (_plain if step == "plain" else _enclave)(say=lambda s: out.put(("progress", s)), **args)
        out.put(("result", result | {"process_peak_rss_mb": vm_hwm_mb()}))
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))
        raise


def _measure(step: str, args: dict[str, Any], say: Progress) -> dict[str, Any]:
    """Run ``step`` in a fresh ``spawn`` process, relaying its progress lines; return its figures."""
    out = (ctx := mp.get_context("spawn")).Queue()
    proc = ctx.Process(target=_child, args=(step, args, out))
    proc.start()
    try:
        while proc.is_alive() or not out.empty():
            with contextlib.suppress(queue.Empty):
                kind, value = out.get(timeout=1)
                if kind == "error":
                    raise RuntimeError(f"the {step} step failed: {value}")
                if kind == "result":
                    return dict(value)
                say(value)
        raise RuntimeError(f"the {step} process died (exit status {proc.exitcode})")
    finally:
        proc.join(timeout=60)


def run_tee_bench(rows: int, workdir: Path | None, frame_kb: int, say: Progress) -> dict[str, Any]:
    """Generate the three parties' files, measure both paths; returns the JSON-able figures."""
    with tempfile.TemporaryDirectory(prefix="confide-bench-tee-", dir=workdir) as tmp:
        paths, size = {}, 0
        for alias, name in PARTIES.items():
            path = Path(tmp) / f"{name}.parquet"
            say(f"writing {name}'s {rows:,} rows to {path} ...")
            size += write_party(path, alias, rows, say)
            paths[alias] = str(path)
        os.sync()  # no writeback of the fresh files during the measured steps
        say("plain: DuckDB on the three Parquet files (fresh process) ...")
        plain = _measure("plain", {"paths": paths}, say)
        say("enclave: attest, verify, stream the three inputs, run, seal (fresh process) ...")
        enclave = _measure("enclave", {"paths": paths, "max_frame": frame_kb * 1024}, say)
    return _figures(rows, size, plain, enclave) | {"frame_kb": frame_kb}


def _figures(rows: int, size: int, plain: dict[str, Any], enc: dict[str, Any]) -> dict[str, Any]:
    found = {"bench": "tee", "rows_per_party": rows, "parties": len(PARTIES), "tee_type": "simulated"}
    found |= {"enclave_seconds": round(enc["seconds"], 3), "plain_seconds": round(plain["seconds"], 3)}
    cores = os.cpu_count() or 1
    found |= {"ratio": round(enc["seconds"] / plain["seconds"], 3), "cores": cores}
    found |= {
        "enclave_cpu_seconds": round(enc["cpu_seconds"], 2),
        "plain_cpu_seconds": round(plain["cpu_seconds"], 2),
    }
    # the ratio if the enclave path kept every core busy from attestation to the sealed result
    found["ratio_floor"] = round(enc["cpu_seconds"] / cores / plain["seconds"], 3)
    found |= {k: enc[k] for k in ("peak_rss_mb", "phases", "frames", "network_isolated")}
    found |= {"owners_peak_rss_mb": enc["process_peak_rss_mb"], "channel_mb": round(enc["channel_mb"], 1)}
    found |= {"plain_peak_rss_mb": plain["process_peak_rss_mb"], "parquet_mb": round(size / 2**20, 1)}
    found |= {"output_rows": enc["rows"], "output_digest": enc["digest"]}
    return found | {"results_match": (enc["digest"], enc["rows"]) == (plain["digest"], plain["rows"])}
