"""Minimum cell size inside the MPC: groups, tiers and (group, tier) cells with fewer rows than
``min_cell`` come out as shares of zero (their statistics are NaN), the others equal plaintext, and
the parties never see which cells were suppressed (only uniformly masked openings)."""

from __future__ import annotations

from typing import Any

import numpy as np
from _mpc_helpers import SESSION, contexts, run_with_dealer

from confide.engines.mpc.party import reveal, reveal_message
from confide.engines.mpc.stats import StatsSpec, cell_map, finalize, joint_stats

G, J, K = 3, 3, 5


def _data(seed: int = 3) -> tuple[Any, ...]:
    """Bank: a balance and a group key; telecom: spend and a tier. Cell (2, 2) has 2 rows, group 2 has
    2 + 3 + 4 = 9, tier 0 has plenty; cell (1, 0) has 4 rows (below K = 5)."""
    rng = np.random.default_rng(seed)
    sizes = np.array([[30, 20, 10], [4, 25, 15], [3, 4, 2]])
    keys = np.repeat(np.arange(G), sizes.sum(1))
    tiers = np.concatenate([np.repeat(np.arange(J), sizes[i]) for i in range(G)])
    n = len(keys)
    balance = rng.normal(50_000, 12_000, n).round(2)
    spend = rng.gamma(3.0, 40.0, n).round(2)
    return keys, tiers, balance, spend, sizes


def _run(min_cell: int) -> tuple[StatsSpec, list[Any], dict[str, Any]]:
    keys, tiers, balance, spend, _ = _data()
    n = len(keys)
    hot_k, hot_t = np.eye(G)[keys], np.eye(J)[tiers]
    a = (balance[:, None, None] * hot_k[:, None, :]).reshape(n, -1)  # c G + i
    b = np.hstack([hot_t, (spend[:, None, None] * hot_t[:, None, :]).reshape(n, -1)])  # j, then J + c J + j
    spec = StatsSpec(n, a.shape[1], b.shape[1], G, 0, n_levels=J, min_cell=min_cell)
    ctx = contexts()
    res = run_with_dealer(
        {
            0: joint_stats(ctx[0], spec, a, keys),
            1: joint_stats(ctx[1], spec, b, levels=hot_t.astype(np.int64)),
        }
    )
    msgs = {p: reveal_message(SESSION, p, 50, res[p]) for p in (0, 1)}
    revealed = reveal(msgs, SESSION, 50, (0, 1), spec.n_outputs)
    return spec, revealed, finalize(spec, revealed)


def test_small_cells_groups_and_tiers_are_suppressed_and_the_rest_is_exact() -> None:
    keys, tiers, _balance, spend, sizes = _data()
    _spec, _revealed, out = _run(K)
    sup = out["suppressed"]
    assert sup["cells"].tolist() == (sizes < K).tolist()
    assert sup["groups"].tolist() == (sizes.sum(1) < K).tolist() == [False, False, False]
    assert sup["levels"].tolist() == [False, False, False]
    cells = out["cells"]["count"]
    for i in range(G):
        for j in range(J):
            if sizes[i, j] < K:
                assert np.isnan(cells[i, j])
                assert np.isnan(out["groups"]["sum"][i][J + j])  # the telecom's spend over that cell
            else:
                rows = (keys == i) & (tiers == j)
                assert cells[i, j] == sizes[i, j]
                assert abs(out["groups"]["sum"][i][J + j] - spend[rows].sum()) < 1e-2 * sizes[i, j]


def test_a_suppressed_cell_reveals_zero_shares_not_a_value() -> None:
    """What the requester reconstructs for a small cell is 0 in every output, not the small sum."""
    _, _, _, _, sizes = _data()
    spec, revealed, _ = _run(K)
    maps = cell_map(spec)
    flags = revealed[-1].astype(np.int64)
    small = np.flatnonzero(flags == 0)
    assert len(small) == int((sizes < K).sum())
    for arr, m in zip(revealed, maps, strict=False):
        if m is not None:
            assert not np.any(arr[np.isin(m, small)]), "a suppressed entry is not zero"


def test_without_min_cell_every_cell_is_released() -> None:
    _, _, _, _, sizes = _data()
    _spec, _, out = _run(0)
    assert "suppressed" not in out
    assert out["cells"]["count"].tolist() == sizes.astype(float).tolist()


def test_a_whole_small_group_is_suppressed_everywhere() -> None:
    keys, *_ = _data()
    _, _, out = _run(10)  # group 2 has 9 rows
    assert out["suppressed"]["groups"].tolist() == [False, False, True]
    assert np.isnan(out["groups"]["count"][2]) and not np.isnan(out["groups"]["count"][0])
    col = 2  # the bank's balance * [key = 2]
    assert np.isnan(out["sum"][col]) and np.isnan(out["cov"][col]).all()
    assert out["groups"]["count"][0] == (keys == 0).sum()
