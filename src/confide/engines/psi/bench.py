"""``confide bench psi``: two ECDH-PSI parties on this machine, 50% overlap, against the X25519 limit.

Both parties run in this process (one thread each, talking over an in-memory link) and share one
warm ``spawn`` process pool with a worker per core, which does all hashing and scalar
multiplication. ``scalar_mults_per_s`` is measured in this process before the run, on one core:
``X25519PrivateKey.exchange(X25519PublicKey.from_public_bytes(u))`` on distinct valid points (the
same call the protocol makes). The hardware limit for the 2·n scalar multiplications per party
(4·n in all) spread over the cores is 2·n / scalar_mults_per_s seconds on a 2-core machine, so
``efficiency`` = (2·n / scalar_mults_per_s) / seconds. ``seconds`` covers the whole protocol of both
parties (canonicalization, de-duplication, shuffling, hashing, masking, messages, matching) but
not generating the IDs or starting the pool.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .ecdh import EcdhPsi, new_pool
from .interface import PsiConfig
from .local import run_pair

__all__ = ["measure_scalar_mults", "run_psi_bench"]


def measure_scalar_mults(seconds: float = 1.0) -> float:
    """X25519 exchanges per second on one core (this thread)."""
    points = [X25519PrivateKey.generate().public_key().public_bytes_raw() for _ in range(256)]
    priv = X25519PrivateKey.generate()
    exchange, load = priv.exchange, X25519PublicKey.from_public_bytes
    done, start = 0, time.perf_counter()
    while True:
        for u in points:
            exchange(load(u))
        done += len(points)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def _ids(start: int, n: int) -> list[str]:
    """Phone-number-like IDs (the marketing scenario's key)."""
    return [f"+86 {13_800_000_000 + i}" for i in range(start, start + n)]


def run_psi_bench(
    n: int,
    workers: int | None = None,
    batch: int = 1 << 14,
    output: str = "receiver",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    workers = workers or os.cpu_count() or 1
    ids_a, ids_b = _ids(0, n), _ids(n - n // 2, n)  # overlap: the last n // 2 of A
    expected = n // 2
    pool = new_pool(workers)
    try:
        list(pool.map(time.sleep, [0.05] * workers))  # start every worker before the clock
        smps = measure_scalar_mults()
        log(f"one core: {smps:,.0f} X25519 exchanges/s; limit for n={n:,}: {2 * n / smps:.1f} s")
        engine = EcdhPsi(pool, workers)
        cfg_a = PsiConfig("bench", "receiver", output, batch)  # type: ignore[arg-type]
        cfg_b = PsiConfig("bench", "sender", output, batch)  # type: ignore[arg-type]
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 2.0 or done == total:
                last[0] = now
                log(f"receiver party: {done:,}/{total:,} items")

        start = time.perf_counter()
        res_a, res_b = run_pair((engine, engine), (ids_a, ids_b), (cfg_a, cfg_b), (progress, None))
        seconds = time.perf_counter() - start
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    got = res_a.intersection or []
    correct = len(got) == expected and got == sorted(ids_a[n - expected :])
    if output == "both":
        correct = correct and res_b.intersection == got
    return {
        "n": n,
        "seconds": round(seconds, 3),
        "scalar_mults_per_s": round(smps, 1),
        "efficiency": round((2 * n / smps) / seconds, 4),
        "intersection": len(got),
        "correct": correct,
        "workers": workers,
        "engine": engine.name,
    }
