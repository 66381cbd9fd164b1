"""``bench_mpc(rows)``: joint statistics of a marketing-like vertical dataset, MPC vs numpy.

Party 0 (a bank) holds 4 columns and the group key (12 segments), party 1 (a telecom) 4 columns;
a dealer thread supplies the correlated randomness. The MPC path runs every party in-process
(``transport.run_local``: threads, byte messages), reveals the outputs to a requester and
post-processes them; the plain path computes the same statistics with numpy on the pooled table.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from .beaver import Dealer
from .party import PartyContext, reveal, reveal_message
from .stats import StatsSpec, finalize, joint_stats
from .transport import run_local

N_GROUPS = 12


def marketing_data(
    rows: int, seed: int = 7
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Deterministic synthetic data with cross-party correlations."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.5, 0.6, rows)
    age = np.clip(rng.normal(42, 12, rows), 18, 90).round()
    assets = np.round(income * rng.lognormal(0.8, 0.7, rows), 2)
    products = np.clip(rng.poisson(1 + income / 40000), 0, 9).astype(np.float64)
    responses = rng.binomial(5, np.clip(0.05 + income / 400000, 0, 1)).astype(np.float64)
    bank = np.column_stack([assets, products, age, responses])
    spend = np.round(20 + income / 1500 + rng.normal(0, 15, rows).clip(-19, None), 2)
    data_gb = np.round(np.clip(rng.gamma(2.0, 4.0 + (60 - age).clip(0) / 10, rows), 0, None), 3)
    tenure = np.clip(np.round(rng.normal(age / 4, 3, rows)), 0, None)
    lines = (1 + rng.poisson(0.4 + income / 200000, rows)).astype(np.float64)
    telecom = np.column_stack([spend, data_gb, tenure, lines])
    asset_tier = np.digitize(assets, np.quantile(assets, [0.25, 0.5, 0.75]))
    age_band = np.digitize(age, [35, 55])
    keys = (asset_tier * 3 + age_band).astype(np.int64)
    return bank, telecom, keys


def plain_stats(
    bank: npt.NDArray[np.float64], telecom: npt.NDArray[np.float64], keys: npt.NDArray[np.int64]
) -> dict[str, Any]:
    x = np.hstack([bank, telecom])
    n = x.shape[0]
    counts = np.bincount(keys, minlength=N_GROUPS)
    g_sum = np.zeros((N_GROUPS, telecom.shape[1]))
    g_sq = np.zeros_like(g_sum)
    np.add.at(g_sum, keys, telecom)
    np.add.at(g_sq, keys, telecom**2)
    mean = x.mean(axis=0)
    xc = x - mean
    with np.errstate(invalid="ignore", divide="ignore"):
        g_mean = g_sum / counts[:, None]
        g_var = g_sq / counts[:, None] - g_mean**2
    return {
        "count": n,
        "sum": x.sum(axis=0),
        "mean": mean,
        "var": x.var(axis=0),
        "cov": xc.T @ xc / n,
        "groups": {"count": counts, "sum": g_sum, "mean": g_mean, "var": g_var},
    }


def mpc_stats(
    bank: npt.NDArray[np.float64],
    telecom: npt.NDArray[np.float64],
    keys: npt.NDArray[np.int64],
    timeout: float = 600.0,
) -> dict[str, Any]:
    rows = bank.shape[0]
    spec = StatsSpec(rows, bank.shape[1], telecom.shape[1], N_GROUPS, key_owner=0)
    session = os.urandom(16)
    ctx = {p: PartyContext(p, (0, 1), session, dealer=2) for p in (0, 1)}
    res = run_local(
        {
            0: joint_stats(ctx[0], spec, bank, keys),
            1: joint_stats(ctx[1], spec, telecom),
            2: Dealer(2, (0, 1), session).program(),
        },
        timeout=timeout,
    )
    requester = 3
    msgs = {p: reveal_message(session, p, requester, res[p]) for p in (0, 1)}
    return finalize(spec, reveal(msgs, session, requester, (0, 1), spec.n_outputs))


def _flat(stats: dict[str, Any]) -> npt.NDArray[np.float64]:
    g = stats["groups"]
    parts = [
        stats["sum"],
        stats["mean"],
        stats["var"],
        stats["cov"],
        g["count"],
        g["sum"],
        g["mean"],
        g["var"],
    ]
    return np.concatenate([np.ravel(np.asarray(p, dtype=np.float64)) for p in parts])


def bench_mpc(rows: int) -> dict[str, Any]:
    """Time the MPC joint statistics against numpy on the same data (data generation excluded)."""
    bank, telecom, keys = marketing_data(rows)
    t0 = time.perf_counter()
    mpc = mpc_stats(bank, telecom, keys)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = plain_stats(bank, telecom, keys)
    plain_seconds = time.perf_counter() - t0
    a, b = _flat(mpc), _flat(plain)
    ok = np.isfinite(b)
    err = np.abs(a[ok] - b[ok])
    rel = err / np.maximum(np.abs(b[ok]), 1e-12)
    return {
        "rows": rows,
        "seconds": round(seconds, 4),
        "plain_seconds": round(plain_seconds, 4),
        "ratio": round(seconds / plain_seconds, 2),
        "max_abs_error": float(err.max()),
        "max_rel_error": float(rel.max()),
    }
