"""One federated training job: its spec (from the task on the ledger), what each participant computes
on its own rows, and what the coordinator makes of the securely aggregated sums.

Every vector a participant contributes goes through secure aggregation, so the coordinator learns
only sums over at least ``t`` participants:

* **set-up** (round 0): ``[rows, sum x_j, sum x_j^2]`` over the training rows: the pooled mean and
  standard deviation of each feature (every participant standardizes with these) and the total row
  count (the FedAvg weights are ``rows_u / total``, so each weight is at most 1 and fits the ring).
* **train** (rounds 1..R): ``[w_u * (theta_u - theta), w_u]`` after local training from the global
  ``theta``; the new global model is ``theta + sum / sum w``. With differential privacy each delta is
  clipped to L2 norm C, gets the participant's share of Gaussian noise, and ``w_u = 1`` (``dp``).
* **eval** (after the last round): ``[rows, positives, sum log-loss, sum squared error,
  histogram of positives' scores, histogram of negatives' scores]`` on the holdout rows: the pooled
  validation metrics (the AUC from the two histograms over 400 logit bins, exact up to ties within
  a bin).

The model digest (:func:`model_digest`) covers the spec, the standardization and the parameters; it
is recorded on the ledger after every round, and every participant checks the model it is sent
against it before training on it.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ...crypto.canonical import canonical_bytes
from .dp import DpConfig, privatize
from .dp import report as dp_report
from .errors import FlError
from .fixedpoint import FixedPoint, Ring
from .models import MLP, LogisticRegression, Model
from .strategy import FedAvg, FedProx, Strategy, encode_update

__all__ = [
    "EVAL_CODEC",
    "FL_CODE",
    "FL_CODE_DIGEST",
    "STATS_CODEC",
    "TRAIN_CODEC",
    "FlSpec",
    "FlSpecError",
    "Participant",
    "Standardization",
    "dp_record",
    "eval_length",
    "initial_params",
    "metrics_from",
    "model_digest",
    "predict",
    "standardization_from",
]

FL_CODE = "confide-fl/fedavg-secagg/v1"
FL_CODE_DIGEST = hashlib.sha256(FL_CODE.encode("utf-8")).hexdigest()
MAX_MODEL_PARAMS = 1 << 20
MAX_FEATURES = 256
BINS = 400
LOGIT_RANGE = 20.0
# Set-up and eval sums are counts and sums of squares: few fractional bits, a wide range.
STATS_CODEC = FixedPoint(frac_bits=8, clip=float(2**44))
EVAL_CODEC = FixedPoint(frac_bits=16, clip=float(2**36))
TRAIN_CODEC = FixedPoint()  # 24 fractional bits, |coordinate| <= 2^16
FloatArray = npt.NDArray[np.float64]


class FlSpecError(FlError, ValueError):
    """The task's fl params or data do not make a valid training job (message for people)."""


def _int(params: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    v = params.get(key, default)
    if type(v) is not int or not lo <= v <= hi:
        raise FlSpecError(f"params.{key}: an integer in [{lo}, {hi}]")
    return v


@dataclass(frozen=True)
class FlSpec:
    """The training job, derived from the task alone (every node derives the same one)."""

    columns: tuple[str, ...]
    label: str
    holdout: str | None
    model: str  # "logreg" | "mlp"
    hidden: int
    l2: float
    rounds: int
    local_epochs: int
    batch_size: int
    lr: float
    strategy: str  # "fedavg" | "fedprox"
    mu: float
    seed: int
    dp_clip: float | None  # None: no differential privacy
    dp_noise: float
    dp_delta: float

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in (self.label, self.holdout))

    @classmethod
    def from_task(cls, task: dict[str, Any]) -> FlSpec:
        if task.get("engine") != "fl" or task.get("code_digest") != FL_CODE_DIGEST:
            raise FlSpecError(f"the task is not an fl task with code {FL_CODE!r}")
        params = task["params"]
        columns = tuple(task["inputs"][0]["columns"])
        label, holdout = params.get("label"), params.get("holdout")
        if not isinstance(label, str) or label not in columns:
            raise FlSpecError("params.label: one of the inputs' columns (0/1 values)")
        if holdout is not None and (
            not isinstance(holdout, str) or holdout not in columns or holdout == label
        ):
            raise FlSpecError("params.holdout: another of the inputs' columns (0/1: validation rows)")
        model = params.get("model", "logreg")
        if model not in ("logreg", "mlp"):
            raise FlSpecError("params.model: 'logreg' or 'mlp'")
        strategy = params.get("strategy", "fedavg")
        if strategy not in ("fedavg", "fedprox"):
            raise FlSpecError("params.strategy: 'fedavg' or 'fedprox'")
        clip = params.get("dp_clip_milli")
        spec = cls(
            columns=columns,
            label=label,
            holdout=holdout,
            model=str(model),
            hidden=_int(params, "hidden", 16, 2, 256),
            l2=_int(params, "l2_milli", 0, 0, 10_000) / 1000,
            rounds=_int(params, "rounds", 10, 1, 1000),
            local_epochs=_int(params, "local_epochs", 1, 1, 50),
            batch_size=_int(params, "batch_size", 64, 1, 65_536),
            lr=_int(params, "lr_milli", 100, 1, 10_000) / 1000,
            strategy=str(strategy),
            mu=_int(params, "mu_milli", 10, 0, 10_000) / 1000,
            seed=_int(params, "seed", 0, 0, 2**31 - 1),
            dp_clip=None if clip is None else _int(params, "dp_clip_milli", 0, 1, 10**9) / 1000,
            dp_noise=_int(params, "dp_noise_milli", 0, 0, 100_000) / 1000,
            dp_delta=10.0 ** -_int(params, "dp_delta_exp", 5, 2, 15),
        )
        if not spec.features:
            raise FlSpecError("the inputs' columns hold no feature besides the label and holdout")
        if len(spec.features) > MAX_FEATURES:
            raise FlSpecError(f"at most {MAX_FEATURES} features")
        if spec.n_params > MAX_MODEL_PARAMS:
            raise FlSpecError(f"the model has more than {MAX_MODEL_PARAMS} parameters")
        return spec

    def new_model(self) -> Model:
        d = len(self.features)
        if self.model == "mlp":
            return MLP(d, hidden=self.hidden, l2=self.l2, seed=self.seed)
        return LogisticRegression(d, l2=self.l2)

    @property
    def n_params(self) -> int:
        d = len(self.features)
        return d + 1 if self.model == "logreg" else d * self.hidden + 2 * self.hidden + 1

    def strategy_impl(self) -> Strategy:
        if self.strategy == "fedprox":
            return FedProx(mu=self.mu, epochs=self.local_epochs, lr=self.lr, batch_size=self.batch_size)
        return FedAvg(epochs=self.local_epochs, lr=self.lr, batch_size=self.batch_size)

    def dp(self, threshold: int) -> DpConfig | None:
        if self.dp_clip is None:
            return None
        return DpConfig(
            clip_norm=self.dp_clip, noise_multiplier=self.dp_noise, min_clients=threshold, delta=self.dp_delta
        )

    def record(self) -> dict[str, Any]:
        """The spec as canonical-JSON-safe values (no floats): part of the model digest."""
        return {
            "code": FL_CODE,
            "model": self.model,
            "hidden": self.hidden if self.model == "mlp" else 0,
            "features": list(self.features),
            "label": self.label,
        }


@dataclass(frozen=True)
class Standardization:
    mean: FloatArray
    scale: FloatArray
    total_rows: int

    def apply(self, x: FloatArray) -> FloatArray:
        out: FloatArray = (x - self.mean) / self.scale
        return out


def initial_params(spec: FlSpec) -> FloatArray:
    return spec.new_model().get_params()


def model_digest(spec: FlSpec, std: Standardization, params: FloatArray) -> str:
    """SHA-256 over the spec (canonical JSON) and the float64 little-endian standardization and
    parameters: what ``fl.round`` records and every participant checks."""
    h = hashlib.sha256(b"confide-fl-model/v1\0")
    h.update(canonical_bytes(spec.record()))
    h.update(len(params).to_bytes(8, "little"))
    for arr in (std.mean, std.scale, params):
        h.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
    return h.hexdigest()


def standardization_from(summed: FloatArray, n_features: int) -> Standardization:
    rows = float(summed[0])
    if rows < 1:
        raise FlSpecError("the participants hold no training rows")
    s1, s2 = summed[1 : 1 + n_features], summed[1 + n_features : 1 + 2 * n_features]
    mean = s1 / rows
    var = np.maximum(s2 / rows - mean * mean, 0.0)
    scale = np.sqrt(var)
    scale[scale < 1e-9] = 1.0
    return Standardization(mean, scale, round(rows))


def eval_length() -> int:
    return 4 + 2 * BINS


def _bins(scores: FloatArray) -> npt.NDArray[np.int64]:
    logit = np.log(np.clip(scores, 1e-15, 1.0)) - np.log(np.clip(1.0 - scores, 1e-15, 1.0))
    idx = np.floor((logit + LOGIT_RANGE) / (2 * LOGIT_RANGE) * BINS).astype(np.int64)
    return np.clip(idx, 0, BINS - 1)


def metrics_from(summed: FloatArray) -> dict[str, str | int]:
    """Validation metrics from the summed eval vectors (decimal strings: the ledger signs no floats)."""
    rows, pos = round(float(summed[0])), round(float(summed[1]))
    if rows < 1:
        raise FlSpecError("no validation rows")
    hist_pos, hist_neg = summed[4 : 4 + BINS], summed[4 + BINS :]
    neg = rows - pos
    below = np.concatenate([[0.0], np.cumsum(hist_neg)[:-1]])
    auc = float(np.sum(hist_pos * (below + 0.5 * hist_neg)) / (pos * neg)) if pos and neg else math.nan
    out: dict[str, str | int] = {
        "val_rows": rows,
        "val_positive": pos,
        "val_log_loss": f"{float(summed[2]) / rows:.6f}",
        "val_brier": f"{float(summed[3]) / rows:.6f}",
    }
    if not math.isnan(auc):
        out["val_auc"] = f"{auc:.6f}"
    return out


class Participant:
    """One participant's rows and its side of every round (never sends a row or a plain update)."""

    def __init__(self, spec: FlSpec, table: FloatArray, columns: list[str]) -> None:
        idx = {c: i for i, c in enumerate(columns)}
        x = table[:, [idx[f] for f in spec.features]]
        y = table[:, idx[spec.label]]
        if not np.isin(y, (0.0, 1.0)).all():
            raise FlSpecError(f"{spec.label}: the label holds values other than 0 and 1")
        hold = np.zeros(len(y), dtype=bool)
        if spec.holdout is not None:
            h = table[:, idx[spec.holdout]]
            if not np.isin(h, (0.0, 1.0)).all():
                raise FlSpecError(f"{spec.holdout}: the holdout column holds values other than 0 and 1")
            hold = h == 1.0
        self.spec = spec
        self.x_train, self.y_train = x[~hold], y[~hold]
        # without a holdout column the metrics are over the training rows (said in the metrics' kind)
        self.x_val, self.y_val = (x[hold], y[hold]) if spec.holdout is not None else (x, y)
        self._std_key: tuple[bytes, bytes] | None = None
        self._xs: FloatArray | None = None

    @property
    def rows(self) -> int:
        return len(self.y_train)

    def stats_vector(self) -> Ring:
        x = self.x_train
        vec = np.concatenate([[float(len(x))], x.sum(axis=0), (x * x).sum(axis=0)])
        return STATS_CODEC.encode(vec)

    def _standardized(self, std: Standardization) -> FloatArray:
        key = (std.mean.tobytes(), std.scale.tobytes())
        if self._std_key != key or self._xs is None:
            self._xs, self._std_key = std.apply(self.x_train), key
        return self._xs

    def train_vector(
        self, params: FloatArray, std: Standardization, rng: np.random.Generator, dp: DpConfig | None
    ) -> Ring:
        model = self.spec.new_model()
        update, rows = self.spec.strategy_impl().client_update(
            model, params, (self._standardized(std), self.y_train), 0, rng
        )
        if dp is not None:  # unweighted, clipped and noised: one participant moves the sum by <= C
            delta = update / rows if rows else update
            # the noise comes from the OS, never from the task's seed: the coordinator must not be able
            # to regenerate (and subtract) it
            noised, _ = privatize(delta, dp, np.random.default_rng(secrets.randbits(128)))
            return encode_update(noised, 1.0, TRAIN_CODEC)[0]
        weight = rows / std.total_rows
        delta = update / rows if rows else update
        return encode_update(weight * delta, weight, TRAIN_CODEC)[0]

    def eval_vector(self, params: FloatArray, std: Standardization) -> Ring:
        model = self.spec.new_model()
        model.set_params(params)
        p = model.predict_proba(std.apply(self.x_val)) if len(self.y_val) else np.zeros(0)
        y = self.y_val
        eps = 1e-12
        ll = -(y * np.log(np.clip(p, eps, 1)) + (1 - y) * np.log(np.clip(1 - p, eps, 1)))
        b = _bins(p)
        hist_pos = np.bincount(b[y == 1.0], minlength=BINS).astype(np.float64)
        hist_neg = np.bincount(b[y == 0.0], minlength=BINS).astype(np.float64)
        head = [float(len(y)), float(y.sum()), float(ll.sum()), float(((p - y) ** 2).sum())]
        return EVAL_CODEC.encode(np.concatenate([head, hist_pos, hist_neg]))


def dp_record(spec: FlSpec, threshold: int) -> dict[str, str | int]:
    """The privacy budget spent by the whole job (empty without differential privacy)."""
    cfg = spec.dp(threshold)
    return {} if cfg is None else dp_report(cfg, spec.rounds).as_record()


def predict(spec: FlSpec, std: Standardization, params: FloatArray, x: FloatArray) -> FloatArray:
    """Scores of a released model on rows ``x`` (columns in ``spec.features`` order)."""
    model = spec.new_model()
    model.set_params(params)
    out: FloatArray = model.predict_proba(std.apply(x))
    return out
