"""Models for horizontal FL in plain numpy: logistic regression and a one-hidden-layer MLP.

Both are binary classifiers (sigmoid output, mean binary cross-entropy) whose parameters are one flat
float64 vector, so a client's update is a single vector that ``FixedPoint`` encodes and secure
aggregation sums. ``local_train`` is mini-batch SGD over shuffled data, deterministic given the
``rng``. FedProx (Li et al. 2020) adds ``prox_mu / 2 * ||w - w_global||^2`` to the local objective,
i.e. ``prox_mu * (w - w_global)`` to the gradient. Also ``auc`` (Mann-Whitney, ties count half) and
``log_loss``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@runtime_checkable
class Model(Protocol):
    """A model whose parameters are a flat float64 vector."""

    @property
    def n_params(self) -> int: ...

    def get_params(self) -> FloatArray: ...

    def set_params(self, vec: npt.ArrayLike) -> None: ...

    def local_train(
        self,
        x: npt.ArrayLike,
        y: npt.ArrayLike,
        epochs: int,
        lr: float,
        batch_size: int,
        rng: np.random.Generator,
        prox_mu: float = 0.0,
        global_params: npt.ArrayLike | None = None,
    ) -> int:
        """Train in place on ``(x, y)``; return the number of samples used (the FedAvg weight)."""
        ...

    def predict_proba(self, x: npt.ArrayLike) -> FloatArray: ...


def sigmoid(z: FloatArray) -> FloatArray:
    """Numerically stable logistic function."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


class _SGDModel:
    """Shared flat parameter storage and the mini-batch SGD loop; subclasses supply ``_grad``."""

    _params: FloatArray
    n_features: int

    @property
    def n_params(self) -> int:
        return int(self._params.size)

    def get_params(self) -> FloatArray:
        return self._params.copy()

    def set_params(self, vec: npt.ArrayLike) -> None:
        v = np.asarray(vec, dtype=np.float64)
        if v.shape != self._params.shape:
            raise ValueError(f"expected {self._params.size} parameters, got shape {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError("parameters must be finite")
        self._params = v.copy()

    def _grad(self, p: FloatArray, x: FloatArray, y: FloatArray) -> FloatArray:
        raise NotImplementedError

    def _forward(self, p: FloatArray, x: FloatArray) -> FloatArray:
        raise NotImplementedError

    def predict_proba(self, x: npt.ArrayLike) -> FloatArray:
        return self._forward(self._params, self._check_x(x))

    def _check_x(self, x: npt.ArrayLike) -> FloatArray:
        a = np.asarray(x, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != self.n_features:
            raise ValueError(f"x must have shape (n, {self.n_features}), got {a.shape}")
        return a

    def local_train(
        self,
        x: npt.ArrayLike,
        y: npt.ArrayLike,
        epochs: int,
        lr: float,
        batch_size: int,
        rng: np.random.Generator,
        prox_mu: float = 0.0,
        global_params: npt.ArrayLike | None = None,
    ) -> int:
        xa = self._check_x(x)
        ya = np.asarray(y, dtype=np.float64).reshape(-1)
        n = int(xa.shape[0])
        if ya.shape[0] != n:
            raise ValueError("x and y have different numbers of rows")
        if epochs < 0 or batch_size <= 0 or lr <= 0 or prox_mu < 0:
            raise ValueError("need epochs >= 0, batch_size > 0, lr > 0, prox_mu >= 0")
        anchor: FloatArray | None = None
        if prox_mu > 0:
            if global_params is None:
                raise ValueError("FedProx (prox_mu > 0) needs global_params")
            anchor = np.asarray(global_params, dtype=np.float64)
            if anchor.shape != self._params.shape:
                raise ValueError("global_params has the wrong shape")
        p = self._params.copy()
        for _ in range(epochs):
            order = rng.permutation(n)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                g = self._grad(p, xa[idx], ya[idx])
                if anchor is not None:
                    g += prox_mu * (p - anchor)
                p -= lr * g
        self._params = p
        return n

    def loss(self, x: npt.ArrayLike, y: npt.ArrayLike) -> float:
        """Mean binary cross-entropy (without the L2 term) on ``(x, y)``."""
        return log_loss(self.predict_proba(x), y)


class LogisticRegression(_SGDModel):
    """``p = sigmoid(x @ w + b)``; parameters ``[w (n_features), b]``; L2 penalty ``l2/2 ||w||^2``."""

    def __init__(self, n_features: int, l2: float = 0.0) -> None:
        if n_features <= 0 or l2 < 0:
            raise ValueError("need n_features > 0 and l2 >= 0")
        self.n_features = n_features
        self.l2 = l2
        self._params = np.zeros(n_features + 1, dtype=np.float64)

    def _forward(self, p: FloatArray, x: FloatArray) -> FloatArray:
        return sigmoid(x @ p[:-1] + p[-1])

    def _grad(self, p: FloatArray, x: FloatArray, y: FloatArray) -> FloatArray:
        dz = (self._forward(p, x) - y) / x.shape[0]
        g = np.empty_like(p)
        g[:-1] = x.T @ dz + self.l2 * p[:-1]
        g[-1] = dz.sum()
        return g


class MLP(_SGDModel):
    """One tanh hidden layer and a sigmoid output.

    Parameters, flattened in order: ``W1 (n_features x hidden)``, ``b1 (hidden)``, ``w2 (hidden)``,
    ``b2``. Weights start Gaussian with variance ``1 / fan_in`` drawn from ``seed``; biases at zero.
    ``l2`` penalizes the weights (not the biases).
    """

    def __init__(self, n_features: int, hidden: int = 16, l2: float = 0.0, seed: int = 0) -> None:
        if n_features <= 0 or hidden <= 0 or l2 < 0:
            raise ValueError("need n_features > 0, hidden > 0 and l2 >= 0")
        self.n_features = n_features
        self.hidden = hidden
        self.l2 = l2
        rng = np.random.default_rng(seed)
        d, h = n_features, hidden
        w1 = rng.normal(0.0, 1.0 / np.sqrt(d), (d, h))
        w2 = rng.normal(0.0, 1.0 / np.sqrt(h), h)
        self._params = np.concatenate([w1.ravel(), np.zeros(h), w2, np.zeros(1)])

    def _unpack(self, p: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, float]:
        d, h = self.n_features, self.hidden
        w1 = p[: d * h].reshape(d, h)
        b1 = p[d * h : d * h + h]
        w2 = p[d * h + h : d * h + 2 * h]
        return w1, b1, w2, float(p[-1])

    def _forward(self, p: FloatArray, x: FloatArray) -> FloatArray:
        w1, b1, w2, b2 = self._unpack(p)
        return sigmoid(np.tanh(x @ w1 + b1) @ w2 + b2)

    def _grad(self, p: FloatArray, x: FloatArray, y: FloatArray) -> FloatArray:
        w1, b1, w2, b2 = self._unpack(p)
        hid = np.tanh(x @ w1 + b1)
        dz = (sigmoid(hid @ w2 + b2) - y) / x.shape[0]
        dh = np.outer(dz, w2) * (1.0 - hid * hid)
        return np.concatenate(
            [
                (x.T @ dh + self.l2 * w1).ravel(),
                dh.sum(axis=0),
                hid.T @ dz + self.l2 * w2,
                [dz.sum()],
            ]
        )


def auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """ROC AUC as the Mann-Whitney statistic: P(score_pos > score_neg), ties counting half."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    lab = np.asarray(labels).reshape(-1).astype(bool)
    if s.shape != lab.shape:
        raise ValueError("scores and labels differ in length")
    n_pos = int(lab.sum())
    n_neg = lab.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # 1-based rank of each tie group's last member
    avg_rank = upper - (counts - 1) / 2.0
    rank_sum = float(avg_rank[inverse][lab].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def log_loss(probs: npt.ArrayLike, labels: npt.ArrayLike, eps: float = 1e-12) -> float:
    """Mean binary cross-entropy, probabilities clipped to ``[eps, 1 - eps]``."""
    p = np.clip(np.asarray(probs, dtype=np.float64).reshape(-1), eps, 1.0 - eps)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if p.shape != y.shape:
        raise ValueError("probs and labels differ in length")
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))
