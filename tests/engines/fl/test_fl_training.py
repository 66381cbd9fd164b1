from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import numpy as np
import pytest

from confide.engines.fl.errors import FixedPointError
from confide.engines.fl.fixedpoint import FixedPoint
from confide.engines.fl.models import MLP, LogisticRegression, Model, auc, log_loss
from confide.engines.fl.strategy import (
    ClientData,
    FedAvg,
    FedProx,
    RoundInfo,
    Strategy,
    client_updates,
    encode_update,
    federated_round,
    ring_sum,
)

D = 8
SIZES = (150, 250, 400, 200)


def non_iid_task(seed: int = 7) -> tuple[list[ClientData], tuple[np.ndarray, np.ndarray]]:
    """Clients share p(y|x) = sigmoid(x.w + b) but each has its own feature mean and scale."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0, D)
    train: list[ClientData] = []
    xs, ys = [], []
    for n in SIZES:
        mu = rng.normal(0.0, 1.5, D)
        scale = rng.uniform(0.7, 1.3, D)
        for m, out in ((n, None), (n // 2, "test")):
            x = mu + scale * rng.normal(0.0, 1.0, (m, D))
            y = (rng.random(m) < 1.0 / (1.0 + np.exp(-(x @ w - 0.3)))).astype(np.float64)
            if out is None:
                train.append((x, y))
            else:
                xs.append(x)
                ys.append(y)
    return train, (np.vstack(xs), np.concatenate(ys))


def run(
    strategy: Strategy, factory: Callable[[], Model], rounds: int, train: list[ClientData]
) -> list[tuple[np.ndarray, RoundInfo]]:
    g = factory().get_params()
    rng = np.random.default_rng(0)
    out = []
    for r in range(rounds):
        g, info = federated_round(strategy, factory, g, train, FixedPoint(), rng, r)
        out.append((g, info))
    return out


def test_fedavg_logistic_matches_centralized() -> None:
    train, (xt, yt) = non_iid_task()
    factory = lambda: LogisticRegression(D, l2=1e-3)  # noqa: E731
    history = run(FedAvg(epochs=2, lr=0.05, batch_size=32), factory, 10, train)
    fed = factory()
    fed.set_params(history[-1][0])
    fed_auc = auc(fed.predict_proba(xt), yt)

    central = factory()
    xp = np.vstack([np.asarray(x) for x, _ in train])
    yp = np.concatenate([np.asarray(y) for _, y in train])
    central.local_train(xp, yp, epochs=20, lr=0.05, batch_size=32, rng=np.random.default_rng(1))
    central_auc = auc(central.predict_proba(xt), yt)

    assert fed_auc > 0.75
    assert abs(fed_auc - central_auc) < 0.03
    assert all(info.clipped == 0 and info.total_weight == sum(SIZES) for _, info in history)
    assert all(info.clients == len(SIZES) for _, info in history)


def test_mlp_loss_decreases_over_rounds() -> None:
    train, (xt, yt) = non_iid_task()
    factory = lambda: MLP(D, hidden=16, seed=1)  # noqa: E731
    model = factory()
    losses = [log_loss(model.predict_proba(xt), yt)]
    for g, _ in run(FedAvg(epochs=2, lr=0.05, batch_size=32), factory, 8, train):
        model.set_params(g)
        losses.append(log_loss(model.predict_proba(xt), yt))
    assert losses[-1] < losses[0] - 0.1
    assert all(b < a for a, b in pairwise(losses))
    assert auc(model.predict_proba(xt), yt) > 0.75


def test_fedprox_keeps_local_params_closer_to_global() -> None:
    train, _ = non_iid_task()
    factory = lambda: LogisticRegression(D, l2=1e-3)  # noqa: E731
    g = run(FedAvg(epochs=1, lr=0.05, batch_size=32), factory, 2, train)[-1][0]

    def drift(strategy: Strategy) -> list[float]:
        ups = client_updates(strategy, factory, g, train, np.random.default_rng(3))
        return [float(np.linalg.norm(u / w)) for u, w in ups]

    avg = drift(FedAvg(epochs=5, lr=0.05, batch_size=32))
    prox = drift(FedProx(mu=1.0, epochs=5, lr=0.05, batch_size=32))
    assert all(p < a for p, a in zip(prox, avg, strict=True))
    assert sum(prox) < 0.8 * sum(avg)
    # mu = 0 is exactly FedAvg (same rng stream).
    same = drift(FedProx(mu=0.0, epochs=5, lr=0.05, batch_size=32))
    assert same == avg


def test_fixed_point_sum_equals_float_sum() -> None:
    train, _ = non_iid_task()
    factory = lambda: MLP(D, hidden=8, seed=2)  # noqa: E731
    strategy = FedAvg(epochs=1, lr=0.05, batch_size=16)
    g = factory().get_params()
    fp = FixedPoint()
    ups = client_updates(strategy, factory, g, train, np.random.default_rng(5), round=0)
    float_sum = np.sum([u for u, _ in ups], axis=0)
    new_g, info = federated_round(strategy, factory, g, train, fp, np.random.default_rng(5), 0)
    bound = len(train) * 2.0 ** -(fp.frac_bits + 1)
    assert np.max(np.abs(info.summed_update - float_sum)) <= bound
    assert info.total_weight == float(sum(SIZES))
    assert np.max(np.abs(new_g - (g + float_sum / sum(SIZES)))) <= bound / sum(SIZES) + 1e-15
    # the ring sum is what SecAgg returns: independent of summation order
    rings = [encode_update(u, w, fp)[0] for u, w in ups]
    assert np.array_equal(ring_sum(rings, fp), ring_sum(rings[::-1], fp))


class _Fixed:
    """A stand-in model whose local training jumps to fixed parameters (for known answers)."""

    def __init__(self) -> None:
        self.p = np.zeros(2)

    @property
    def n_params(self) -> int:
        return 2

    def get_params(self) -> np.ndarray:
        return self.p.copy()

    def set_params(self, vec: object) -> None:
        self.p = np.asarray(vec, dtype=np.float64).copy()

    def local_train(self, x: object, y: object, *args: object, **kwargs: object) -> int:
        xa = np.asarray(x)
        self.p = xa[0].astype(np.float64)  # the client's target is its first row
        return int(xa.shape[0])

    def predict_proba(self, x: object) -> np.ndarray:
        return np.zeros(len(np.asarray(x)))


def test_aggregate_is_weighted_average_of_deltas_known_answer() -> None:
    g = np.array([1.0, -1.0])
    # client A: 1 sample, moves to (2, 0)  -> delta (1, 1);  client B: 3 samples, moves to (1, -3) -> (0, -2)
    data: list[ClientData] = [
        (np.array([[2.0, 0.0]]), np.zeros(1)),
        (np.tile([1.0, -3.0], (3, 1)), np.zeros(3)),
    ]
    new_g, info = federated_round(FedAvg(), _Fixed, g, data, FixedPoint(), np.random.default_rng(0))
    assert info.total_weight == 4.0
    assert info.summed_update.tolist() == [1.0, -5.0]  # 1*(1,1) + 3*(0,-2)
    assert new_g.tolist() == [1.25, -2.25]  # g + (1/4, -5/4)
    assert info.clipped == 0


def test_clipping_is_counted_and_oversized_weight_refused() -> None:
    g = np.zeros(2)
    data: list[ClientData] = [
        (np.array([[10.0, 0.5]]), np.zeros(1)),
        (np.array([[-0.5, 0.5]] * 2), np.zeros(2)),
    ]
    fp = FixedPoint(frac_bits=16, clip=4.0)
    _, info = federated_round(FedAvg(), _Fixed, g, data, fp, np.random.default_rng(0))
    assert info.clipped == 1  # 1 * 10.0 > clip
    assert info.summed_update.tolist() == [4.0 - 1.0, 0.5 + 1.0]
    too_many = [(np.zeros((5, 2)), np.zeros(5))]
    with pytest.raises(FixedPointError):
        federated_round(FedAvg(), _Fixed, g, too_many, fp, np.random.default_rng(0))


def test_auc_and_log_loss_known_answers() -> None:
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5  # ties count half
    assert auc([0.2, 0.2, 0.9], [0, 1, 1]) == 0.75
    with pytest.raises(ValueError):
        auc([0.1, 0.2], [1, 1])
    assert log_loss([0.5, 0.5], [0, 1]) == pytest.approx(np.log(2))
    assert log_loss([1.0, 0.0], [1, 0]) < 1e-11


def test_models_are_deterministic_and_check_shapes() -> None:
    train, _ = non_iid_task()
    x, y = train[0]
    for make in (lambda: LogisticRegression(D), lambda: MLP(D, hidden=4, seed=9)):
        a, b = make(), make()
        assert isinstance(a, Model)
        a.local_train(x, y, 2, 0.1, 16, np.random.default_rng(11))
        b.local_train(x, y, 2, 0.1, 16, np.random.default_rng(11))
        assert np.array_equal(a.get_params(), b.get_params())
        assert a.get_params().shape == (a.n_params,)
        with pytest.raises(ValueError):
            a.set_params(np.zeros(a.n_params + 1))
        with pytest.raises(ValueError):
            a.local_train(x, y, 1, 0.1, 16, np.random.default_rng(0), prox_mu=0.1)  # no global_params


def test_mlp_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(4)
    m = MLP(3, hidden=4, l2=0.01, seed=4)
    x, y = rng.normal(size=(6, 3)), (rng.random(6) < 0.5).astype(np.float64)
    p = m.get_params()

    def objective(q: np.ndarray) -> float:
        m.set_params(q)
        w1, _, w2, _ = m._unpack(q)
        return log_loss(m.predict_proba(x), y, eps=0.0) + 0.005 * (np.sum(w1**2) + np.sum(w2**2))

    num = np.array([(objective(p + e) - objective(p - e)) / 2e-6 for e in np.eye(p.size) * 1e-6])
    assert np.allclose(m._grad(p, x, y), num, atol=1e-6)
