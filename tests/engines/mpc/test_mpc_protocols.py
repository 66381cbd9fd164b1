from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _mpc_helpers import SESSION, contexts, run_with_dealer

from confide.engines.mpc import fixedpoint as fp
from confide.engines.mpc.beaver import ElemTriple, MatTriple, Spec, TruncPair
from confide.engines.mpc.errors import MpcProtocolError
from confide.engines.mpc.logreg import LrSpec, auc, predict_scores, train_plain, train_ss
from confide.engines.mpc.party import PartyContext, reveal, reveal_message
from confide.engines.mpc.stats import StatsSpec, finalize, joint_stats


def _reveal(res: dict[int, Any], parties: tuple[int, ...], n: int) -> list[Any]:
    msgs = {
        p: reveal_message(SESSION, p, 50, res[p] if isinstance(res[p], list) else [res[p]]) for p in parties
    }
    return reveal(msgs, SESSION, 50, parties, n)


def _arith(ctx: PartyContext, x: Any, y: Any, a: Any, b: Any) -> Any:
    n = 6
    shared = yield from ctx.inputs(
        [v for v in (x, y, a, b) if v is not None], {0: [(n,), (3, 4)], 1: [(n,), (4, 2)]}
    )
    xs, ys = shared[0][0], shared[1][0]
    am, bm = shared[0][1], shared[1][1]
    t1, t2 = yield from ctx.dealer([Spec.elem(n), Spec.matmul(3, 4, 2)])
    assert isinstance(t1, ElemTriple) and isinstance(t2, MatTriple)
    (xy,) = yield from ctx.mul([(xs, ys, t1)])
    ab = yield from ctx.matmul(am, bm, t2)
    (xy, ab_t) = yield from ctx.truncate([xy, ab.reshape(-1)], 16)
    yield from ctx.finish()
    return [xy, ab_t.reshape(3, 2), xs + ys, xs - ys, xs * np.uint64(3)]


def test_beaver_products_two_parties() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(0, 50, 6), rng.normal(0, 50, 6)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    ctx = contexts()
    res = run_with_dealer(
        {
            0: _arith(ctx[0], fp.encode(x), None, fp.encode(a), None),
            1: _arith(ctx[1], None, fp.encode(y), None, fp.encode(b)),
        }
    )
    xy, ab, s, d, m = (fp.decode(v) for v in _reveal(res, (0, 1), 5))
    assert np.allclose(xy, x * y, atol=50 * 2**-16 * 2 + 2**-15)
    assert np.allclose(ab, a @ b, atol=1e-3)
    assert np.allclose(s, x + y, atol=2**-15) and np.allclose(d, x - y, atol=2**-15)
    assert np.allclose(m, 3 * x, atol=2**-14)


def _three(ctx: PartyContext, x: Any) -> Any:
    shapes = {0: [(8,)], 1: [(8,)], 2: [(8,)]}
    shared = yield from ctx.inputs([x], shapes)
    t, tr = yield from ctx.dealer([Spec.elem(8), Spec.trunc(8, 16)])
    assert isinstance(t, ElemTriple) and isinstance(tr, TruncPair)
    (p,) = yield from ctx.mul([(shared[0][0], shared[1][0], t)])
    (p,) = yield from ctx.truncate([p + shared[2][0] * np.uint64(1 << 16)], 16, [tr])
    yield from ctx.finish()
    return p


def test_three_parties_with_dealer_truncation() -> None:
    rng = np.random.default_rng(4)
    xs = [rng.normal(0, 100, 8) for _ in range(3)]
    parties = (0, 1, 2)
    ctx = contexts(parties)
    res = run_with_dealer({p: _three(ctx[p], fp.encode(xs[p])) for p in parties}, parties)
    (out,) = _reveal(res, parties, 1)
    xr = [fp.decode(fp.encode(v)) for v in xs]  # the inputs as encoded: only truncation error remains
    assert np.max(np.abs(fp.decode(out) - (xr[0] * xr[1] + xr[2]))) <= 2 * 2**-16


def test_dealer_refuses_disagreeing_requests() -> None:
    ctx = contexts()

    def ask(c: PartyContext, n: int) -> Any:
        m = yield from c.dealer([Spec.elem(n)])
        return m

    with pytest.raises(MpcProtocolError, match="disagree"):
        run_with_dealer({0: ask(ctx[0], 4), 1: ask(ctx[1], 5)}, timeout=2)


def _marketing(n: int, seed: int) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.5, 0.5, n)
    a = np.column_stack(
        [np.round(income * 3, 2), rng.integers(18, 80, n), rng.poisson(2, n), rng.normal(0, 1, n)]
    )
    b = np.column_stack(
        [np.round(income / 1000 + rng.normal(0, 5, n), 2), rng.gamma(2, 3, n), rng.integers(0, 30, n)]
    )
    keys = np.digitize(a[:, 0], np.quantile(a[:, 0], np.linspace(0, 1, 13)[1:-1]))
    return a, b, keys


@pytest.mark.parametrize("key_owner", [0, 1])
def test_joint_stats_equal_numpy(key_owner: int) -> None:
    n = 20000
    a, b, keys = _marketing(n, 11)
    spec = StatsSpec(n, a.shape[1], b.shape[1], 12, key_owner)
    ctx = contexts()
    ka = keys if key_owner == 0 else None
    kb = keys if key_owner == 1 else None
    res = run_with_dealer({0: joint_stats(ctx[0], spec, a, ka), 1: joint_stats(ctx[1], spec, b, kb)})
    out = finalize(spec, _reveal(res, (0, 1), spec.n_outputs))
    x = np.hstack([a, b])
    assert out["count"] == n
    # integer columns: sums exact
    for j in (1, 2, 6):
        assert out["sum"][j] == x[:, j].sum()
    # other columns: each value rounded to 2^(e-17) with e = ceil(log2 std)
    bound = n * np.ldexp(1.0, np.ceil(np.log2(x.std(0))).astype(int) - 17)
    assert np.all(np.abs(out["sum"] - x.sum(0)) <= bound)
    assert np.allclose(out["sum"], x.sum(0), rtol=1e-6, atol=1e-3)
    assert np.allclose(out["mean"], x.mean(0), rtol=1e-6, atol=1e-6)
    assert np.allclose(out["var"], x.var(0), rtol=1e-4)
    cov = np.cov(x.T, ddof=0)
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.max(np.abs(out["cov"] - cov) / scale) < 1e-4
    vals = b if key_owner == 0 else a
    g = out["groups"]
    assert g["count"].tolist() == np.bincount(keys, minlength=12).tolist()
    lsb = np.ldexp(1.0, np.ceil(np.log2(vals.std(0))).astype(int) - 17)  # input rounding, per value
    for k in range(12):
        rows = vals[keys == k]
        assert np.all(np.abs(g["sum"][k] - rows.sum(0)) <= len(rows) * lsb)
        assert np.all(np.abs(g["mean"][k] - rows.mean(0)) <= lsb)
        assert np.allclose(g["var"][k], rows.var(0), rtol=1e-3)


def _lr_data(n: int, seed: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    beta = np.array([1.2, -0.8, 0.5, 0.0, 0.6, -0.4])
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ beta - 0.5)))).astype(np.float64)
    return x, y


def test_ss_lr_matches_plaintext_training() -> None:
    n = 4096
    x, y = _lr_data(n, 21)
    spec = LrSpec(n, 4, 2, label_owner=1, epochs=4, batch_size=128, learning_rate=0.5, shuffle_seed=3)
    ctx = contexts()
    res = run_with_dealer({0: train_ss(ctx[0], spec, x[:, :4]), 1: train_ss(ctx[1], spec, x[:, 4:], y)})
    (w_sh,) = _reveal(res, (0, 1), 1)
    w = fp.decode(w_sh)
    w_poly = train_plain(x, y, spec, "poly3")
    w_exact = train_plain(x, y, spec, "exact")
    assert np.max(np.abs(w - w_poly)) < 0.01
    auc_mpc, auc_poly, auc_exact = (auc(predict_scores(x, v), y) for v in (w, w_poly, w_exact))
    assert abs(auc_mpc - auc_poly) < 0.01
    assert abs(auc_mpc - auc_exact) < 0.01
    assert auc_mpc > 0.75  # real signal learned


def test_auc_known_answers() -> None:
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert auc(np.array([1.0, 1.0]), np.array([0, 1])) == 0.5
