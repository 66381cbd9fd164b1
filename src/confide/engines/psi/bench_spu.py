"""``confide bench psi --engine spu-rr22``: SPU's PSI through Confide's engine vs. SPU called directly.

Both measurements use the same two ID sets (phone-number-like, n per party, 50% overlap) in the
same run, each with two warm worker processes (SPU imported before the clock):

- ``direct_seconds``: the two workers run ``psi_execute`` on CSV files written before the clock,
  linked to each other directly (SPU's own loopback link) — SPU as its own users run it. SPU keeps
  a ``.meta`` cache (a row count) beside an input file and skips a scan of it when the cache is
  there; Confide's engine writes a fresh file each run, so the cache is removed before every
  direct run too;
- ``seconds``: two :class:`~.spu.SpuPsi` parties over an in-memory Confide transport, from the
  Arrow ID arrays to each party's sorted result: canonicalization, de-duplication, the hello, the
  CSV, the tunnel that carries SPU's link over the transport, reading and sorting the output.

Each is run ``repeat`` times, alternating, and the best time of each is reported (the machine is
shared and noisy; every time is listed in ``runs``). ``overhead`` = seconds / direct_seconds.
``--skip-direct`` (for 10^8 IDs, where the direct run would double the wall time) reports
``seconds`` alone.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .interface import PsiConfig, PsiError
from .local import run_pair
from .spu import LINK_WINDOW, SPU_PROTOCOLS, SpuPsi, SpuWorkers, free_port

__all__ = ["id_array", "run_spu_bench"]


def id_array(start: int, n: int) -> pa.Array:
    """``"+86 1380…"`` phone-number-like IDs ``start .. start+n-1``, built in Arrow (10^8 in seconds)."""
    nums = pc.cast(pa.array(np.arange(13_800_000_000 + start, 13_800_000_000 + start + n)), pa.string())
    return pc.binary_join_element_wise(pa.scalar("+86 "), nums, "")


def _direct(workers: SpuWorkers, protocol: str, paths: list[Path], n_out: list[Path]) -> float:
    a, b = workers.take(), workers.take()
    ports = [free_port(), free_port()]
    parties = [f"127.0.0.1:{p}" for p in ports]
    errors: list[BaseException] = []

    def go(worker: Any, rank: int) -> None:
        link = {
            "rank": rank,
            "parties": parties,
            "link_id": "confide-bench-direct",
            "recv_timeout_ms": 600_000,
            "window": LINK_WINDOW,
        }
        job = {
            "protocol": protocol,
            "receiver_rank": 0,
            "broadcast": False,
            "keys_unique": True,
            "input": str(paths[rank]),
            "output": str(n_out[rank]),
        }
        try:
            worker.link(link)
            worker.run(job)
        except BaseException as exc:
            errors.append(exc)

    for path in paths:  # SPU caches a row count beside its input: every direct run starts cold, as ours do
        path.with_name(path.name + ".meta").unlink(missing_ok=True)
    try:
        for w in (a, b):
            w.wait_ready()
        start = time.perf_counter()
        threads = [threading.Thread(target=go, args=(w, r)) for r, w in enumerate((a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - start
        if errors:
            raise errors[0]
        rows = pacsv.read_csv(n_out[0]).num_rows
        if rows != len(pacsv.read_csv(paths[0])) // 2:
            raise PsiError(f"the direct SPU run found {rows} rows, not the expected half")
        return seconds
    finally:
        a.close()
        b.close()


def _through_confide(spu: SpuPsi, ids: tuple[pa.Array, pa.Array], log: Callable[[str], None]) -> Any:
    cfg_a = PsiConfig("bench", "receiver", "receiver", idle_timeout=600.0)
    cfg_b = PsiConfig("bench", "sender", "receiver", idle_timeout=600.0)
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 2.0 or done == total:
            last[0] = now
            log(f"receiver party (through Confide): {done}%")

    start = time.perf_counter()
    res_a, _res_b = run_pair((spu, spu), ids, (cfg_a, cfg_b), (progress, None))
    return time.perf_counter() - start, res_a


def _correct(got: list[str], n: int) -> bool:
    expected = n // 2
    if len(got) != expected:
        return False
    if n <= 10_000_000:
        want: list[str] = id_array(n - expected, expected).to_pylist()
        return got == want
    first, last = f"+86 {13_800_000_000 + n - expected}", f"+86 {13_800_000_000 + n - 1}"
    return got[0] == first and got[-1] == last  # sorted, distinct, right count: the whole range


def run_spu_bench(
    n: int,
    engine: str = "spu-rr22",
    skip_direct: bool = False,
    log: Callable[[str], None] = print,
    tmp_root: Path | None = None,
    repeat: int = 3,
) -> dict[str, Any]:
    protocol = SPU_PROTOCOLS[engine]
    t0 = time.perf_counter()
    ids_a, ids_b = id_array(0, n), id_array(n - n // 2, n)  # overlap: the last n // 2 of A
    log(f"generated 2 x {n:,} IDs in {time.perf_counter() - t0:.1f} s")
    workers = SpuWorkers(spares=2, tmp_root=tmp_root)
    spu = SpuPsi(engine, workers)
    runs: dict[str, list[float]] = {"direct": [], "confide": []}
    correct = True
    try:
        with tempfile.TemporaryDirectory(prefix="confide-spu-bench-", dir=tmp_root) as tmp:
            paths = [Path(tmp) / "a.csv", Path(tmp) / "b.csv"]
            outs = [Path(tmp) / "a.out.csv", Path(tmp) / "b.out.csv"]
            if not skip_direct:
                for arr, path in zip((ids_a, ids_b), paths, strict=True):
                    pacsv.write_csv(pa.table({"id": arr}), path)
            for i in range(repeat):
                if not skip_direct:
                    workers.warm()
                    log(f"[{i + 1}/{repeat}] SPU called directly (its own link between two workers)...")
                    runs["direct"].append(round(_direct(workers, protocol, paths, outs), 3))
                    log(f"direct: {runs['direct'][-1]:.2f} s")
                workers.warm()
                log(f"[{i + 1}/{repeat}] SPU through Confide's engine (tunnel over the PSI transport)...")
                seconds, res = _through_confide(spu, (ids_a, ids_b), log)
                runs["confide"].append(round(seconds, 3))
                log(f"through Confide: {seconds:.2f} s")
                correct = correct and _correct(res.intersection or [], n)
                size = len(res.intersection or [])
                del res
    finally:
        workers.close()
    result: dict[str, Any] = {"n": n, "engine": engine, "seconds": min(runs["confide"]), "runs": runs}
    if runs["direct"]:
        result["direct_seconds"] = min(runs["direct"])
        result["overhead"] = round(result["seconds"] / result["direct_seconds"], 4)
    result |= {"intersection": size, "correct": correct, "tunnel_bytes": sum(spu.last_tunnel_bytes)}
    return result
