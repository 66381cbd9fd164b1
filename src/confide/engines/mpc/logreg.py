"""Vertical logistic regression on secret shares (SS-LR), two parties and a dealer.

Party 0 holds features ``X_0 (n, k_0)``, party 1 holds ``X_1 (n, k_1)``, one of them holds the
0/1 label ``y``; rows are PSI-aligned. Features should be standardized by their owners (locally).
Both parties share their features and the label once (32-byte seeds), then run mini-batch
gradient descent entirely on shares; the weights ``w`` (bias last) stay shares until revealed.

Per batch (``B = 2^b`` rows, consecutive in a public per-epoch permutation, remainder dropped):

* ``u = X_b w``: Beaver matrix triple, truncate F bits;
* ``s = sigma3(u)``, the **degree-3 polynomial** ``0.5 + 0.15012 u - 0.001593 u^3`` (least-squares
  fit of the sigmoid on [-8, 8], Kim et al. 2018, iDASH): ``u^2`` and ``u * (c1 + c3 u^2)`` with
  two elementwise Beaver triples. It is only a sigmoid on [-8, 8]: beyond it the cubic turns
  back, so keep features standardized and the learning rate moderate;
* ``w -= lr / B * X_b^T (s - y)``: Beaver matrix triple, truncate ``F + b`` bits, times ``lr``.

One dealer request and four opening rounds per batch. Truncation is SecureML's (two parties): each
truncated element fails with probability <= ``2^(l_x + 1 - 64)``; the largest is the gradient sum
(``l_x`` ~ b + 34 for standardized features), about 2^-22 per element for ``B = 256``.
``train_plain`` runs the same algorithm in float64 (same polynomial or the exact sigmoid, same
batches) as the reference.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import fixedpoint as fp
from .beaver import ElemTriple, MatTriple, Spec
from .errors import MpcError
from .fixedpoint import Ring
from .party import PartyContext
from .program import Inbound, Round

Floats = npt.NDArray[np.float64]
C1 = 0.15012
C3 = -0.001593


@dataclass(frozen=True)
class LrSpec:
    n_rows: int
    k_0: int
    k_1: int
    label_owner: int = 0
    epochs: int = 5
    batch_size: int = 256
    learning_rate: float = 1.0
    shuffle_seed: int = 0  # public: both parties derive the same batch order

    @property
    def n_weights(self) -> int:
        return self.k_0 + self.k_1 + 1

    def batches(self) -> list[npt.NDArray[np.int64]]:
        b = self.batch_size
        if b < 1 or b & (b - 1):
            raise MpcError("batch size must be a power of two")
        rng = np.random.default_rng(self.shuffle_seed)
        out = []
        for _ in range(self.epochs):
            perm = rng.permutation(self.n_rows)
            out += [perm[i : i + b] for i in range(0, self.n_rows - b + 1, b)]
        return out


def sigmoid3(u: Floats) -> Floats:
    return 0.5 + C1 * u + C3 * u**3


def train_ss(
    ctx: PartyContext, spec: LrSpec, features: Floats, labels: Floats | None = None
) -> Generator[Round, Inbound, Ring]:
    """One party's SS-LR program; returns its share of the weights (F fractional bits, bias last)."""
    if ctx.parties != (0, 1) or ctx.dealer_id is None:
        raise MpcError("SS-LR runs between parties 0 and 1 with a dealer")
    f = ctx.frac_bits
    me = ctx.party
    n, k = spec.n_rows, spec.n_weights
    kme = spec.k_0 if me == 0 else spec.k_1
    feats = np.asarray(features, dtype=np.float64)
    if feats.shape != (n, kme):
        raise MpcError(f"party {me}: features have shape {feats.shape}, expected {(n, kme)}")
    mine = [fp.encode(feats)]
    if me == spec.label_owner:
        if labels is None or np.shape(labels) != (n,):
            raise MpcError(f"party {me}: labels must be a vector of {n} values")
        mine.append(fp.encode(np.asarray(labels, dtype=np.float64)))
    shapes: dict[int, list[tuple[int, ...]]] = {0: [(n, spec.k_0)], 1: [(n, spec.k_1)]}
    shapes[spec.label_owner].append((n,))
    shared = yield from ctx.inputs(mine, shapes)
    x = np.hstack([shared[0][0], shared[1][0], ctx.public(fp.encode(np.ones((n, 1))))])
    y = shared[spec.label_owner][1]
    w = np.zeros((k, 1), dtype=np.uint64)
    bsz = spec.batch_size
    bbits = bsz.bit_length() - 1
    half = ctx.public(fp.encode(0.5, f))
    c1 = ctx.public(fp.encode(C1, f))
    c3 = fp.encode(C3, f)
    lr = fp.encode(spec.learning_rate, f)
    for idx in spec.batches():
        xb = x[idx]
        yb = y[idx].reshape(bsz, 1)
        mats = yield from ctx.dealer(
            [Spec.matmul(bsz, k, 1), Spec.elem(bsz), Spec.elem(bsz), Spec.matmul(k, bsz, 1)]
        )
        t_fwd, t_sq, t_cube, t_grad = mats
        assert isinstance(t_fwd, MatTriple) and isinstance(t_grad, MatTriple)
        assert isinstance(t_sq, ElemTriple) and isinstance(t_cube, ElemTriple)
        u2f = yield from ctx.matmul(xb, w, t_fwd)
        (u,) = yield from ctx.truncate([u2f.reshape(bsz)], f)
        (uu,) = yield from ctx.mul([(u, u, t_sq)])
        (uu,) = yield from ctx.truncate([uu], f)
        (c3uu,) = yield from ctx.truncate([uu * c3], f)
        inner = c3uu + c1
        (s,) = yield from ctx.mul([(u, inner, t_cube)])
        (s,) = yield from ctx.truncate([s], f)
        g = (s + half).reshape(bsz, 1) - yb
        grad = yield from ctx.matmul(np.ascontiguousarray(xb.T), g, t_grad)
        (grad_mean,) = yield from ctx.truncate([grad.reshape(k)], f + bbits)
        (step,) = yield from ctx.truncate([grad_mean * lr], f)
        w = w - step.reshape(k, 1)
    yield from ctx.finish()
    return w.reshape(k)


def train_plain(x: Floats, y: Floats, spec: LrSpec, sigmoid: str = "poly3") -> Floats:
    """The same mini-batch gradient descent in float64; ``sigmoid`` is ``poly3`` or ``exact``."""
    n = x.shape[0]
    xb1 = np.hstack([np.asarray(x, dtype=np.float64), np.ones((n, 1))])
    w = np.zeros(xb1.shape[1])
    for idx in spec.batches():
        u = xb1[idx] @ w
        s = sigmoid3(u) if sigmoid == "poly3" else 1.0 / (1.0 + np.exp(-u))
        w = w - spec.learning_rate * (xb1[idx].T @ (s - y[idx])) / len(idx)
    return w


def predict_scores(x: Floats, w: Floats) -> Floats:
    out: Floats = np.asarray(x, dtype=np.float64) @ w[:-1] + w[-1]
    return out


def auc(scores: Floats, labels: Floats) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged."""
    s = np.asarray(scores, dtype=np.float64)
    yv = np.asarray(labels) > 0.5
    n_pos, n_neg = int(yv.sum()), int((~yv).sum())
    if n_pos == 0 or n_neg == 0:
        raise MpcError("AUC needs both classes")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[yv].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
