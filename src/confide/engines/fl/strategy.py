"""FL strategies (FedAvg, FedProx) and ``federated_round``: one round with fixed-point summation.

A ``Strategy`` splits a round into the client side (``client_update``: local training from the
global parameters, returning a *weighted* update and its weight) and the server side
(``aggregate``: the new global parameters from the sum of the weighted updates and the total
weight). Because the server only needs sums, the per-client vectors can go through secure
aggregation: the server learns ``sum_u n_u * delta_u`` and ``sum_u n_u``, never one client's update
or sample count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .errors import FixedPointError
from .fixedpoint import FixedPoint, Ring
from .models import FloatArray, Model

ClientData = tuple[npt.ArrayLike, npt.ArrayLike]
ModelFactory = Callable[[], Model]


class Strategy(Protocol):
    def client_update(
        self,
        model: Model,
        global_params: FloatArray,
        data: ClientData,
        round: int,
        rng: np.random.Generator,
    ) -> tuple[FloatArray, float]:
        """Train ``model`` locally from ``global_params``; return ``(weighted update, weight)``."""
        ...

    def aggregate(
        self, global_params: FloatArray, summed_update: FloatArray, total_weight: float
    ) -> FloatArray:
        """New global parameters from the summed weighted updates and the summed weights."""
        ...


class _LocalSGD:
    """Client and server sides shared by FedAvg and FedProx (they differ only in ``prox_mu``)."""

    epochs: int
    lr: float
    batch_size: int

    @property
    def prox_mu(self) -> float:
        return 0.0

    def client_update(
        self,
        model: Model,
        global_params: FloatArray,
        data: ClientData,
        round: int,
        rng: np.random.Generator,
    ) -> tuple[FloatArray, float]:
        x, y = data
        start = np.asarray(global_params, dtype=np.float64)
        model.set_params(start)
        n = model.local_train(
            x, y, self.epochs, self.lr, self.batch_size, rng, prox_mu=self.prox_mu, global_params=start
        )
        weight = float(n)
        return weight * (model.get_params() - start), weight

    def aggregate(
        self, global_params: FloatArray, summed_update: FloatArray, total_weight: float
    ) -> FloatArray:
        if not total_weight > 0:
            raise ValueError("total weight must be positive (no client contributed)")
        return np.asarray(global_params, dtype=np.float64) + np.asarray(summed_update) / total_weight


@dataclass(frozen=True, slots=True)
class FedAvg(_LocalSGD):
    """Federated averaging (McMahan et al. 2017), weights = local sample counts.

    Client ``u`` sends ``n_u * (w_u - w_global)`` and ``n_u``; the server sets
    ``w_global += sum_u n_u (w_u - w_global) / sum_u n_u``.
    """

    epochs: int = 1
    lr: float = 0.1
    batch_size: int = 32


@dataclass(frozen=True, slots=True)
class FedProx(_LocalSGD):
    """FedProx (Li et al. 2020): FedAvg whose local objective adds ``mu/2 ||w - w_global||^2``."""

    mu: float = 0.01
    epochs: int = 1
    lr: float = 0.1
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.mu < 0:
            raise ValueError("mu must be >= 0")

    @property
    def prox_mu(self) -> float:
        return self.mu


@dataclass(frozen=True, slots=True)
class RoundInfo:
    clients: int
    total_weight: float
    clipped: int  # coordinates (of all clients' vectors) that the fixed-point encoding clipped
    summed_update: FloatArray  # decoded sum of the weighted updates (what the server learns)


def client_updates(
    strategy: Strategy,
    model_factory: ModelFactory,
    global_params: FloatArray,
    client_datasets: Sequence[ClientData],
    rng: np.random.Generator,
    round: int = 0,
) -> list[tuple[FloatArray, float]]:
    """Every client's ``(weighted update, weight)``; client ``i`` trains with ``rng.spawn`` child ``i``."""
    child_rngs = rng.spawn(len(client_datasets))
    return [
        strategy.client_update(model_factory(), global_params, data, round, crng)
        for data, crng in zip(client_datasets, child_rngs, strict=True)
    ]


def encode_update(update: FloatArray, weight: float, fixed_point: FixedPoint) -> tuple[Ring, int]:
    """One client's ring vector ``[update..., weight]`` and the number of clipped update coordinates.

    A weight beyond the clip range is refused: clipping it would silently bias the average.
    """
    if not (np.isfinite(weight) and 0 <= weight <= fixed_point.clip):
        raise FixedPointError(f"weight {weight} outside [0, clip={fixed_point.clip}]")
    vec = np.append(np.asarray(update, dtype=np.float64), weight)
    return fixed_point.encode(vec), fixed_point.clipped_count(vec)


def ring_sum(vectors: Sequence[Ring], fixed_point: FixedPoint) -> Ring:
    """Sum ring vectors mod 2^64 — the value ``SecAggServer.aggregate`` returns for the same inputs."""
    if not vectors:
        raise ValueError("nothing to sum")
    fixed_point.check_summands(len(vectors))
    acc = np.zeros_like(vectors[0])
    for v in vectors:
        np.add(acc, v, out=acc)  # uint64 arithmetic wraps mod 2^64
    return acc


def federated_round(
    strategy: Strategy,
    model_factory: ModelFactory,
    global_params: FloatArray,
    client_datasets: Sequence[ClientData],
    fixed_point: FixedPoint,
    rng: np.random.Generator,
    round: int = 0,
) -> tuple[FloatArray, RoundInfo]:
    """One in-process round: local training, fixed-point encoding, exact ring sum, decoding, aggregation.

    Each client encodes ``[weight * delta..., weight]`` with ``fixed_point``; the vectors are summed
    mod 2^64 here, which is exactly the sum secure aggregation yields — in a deployment each client
    feeds its encoded vector to ``SecAggClient.masked_input`` and this sum comes from
    ``SecAggServer.aggregate``, so the server learns only the summed update and the total weight.
    The decoded sum differs from the float sum by at most ``clients * 2^-(frac_bits+1)`` per
    coordinate, unless coordinates were clipped (counted in ``RoundInfo.clipped``; choose ``clip``
    above ``max weight * max |delta|``).
    """
    updates = client_updates(strategy, model_factory, global_params, client_datasets, rng, round)
    encoded: list[Ring] = []
    clipped = 0
    for update, weight in updates:
        ring, c = encode_update(update, weight, fixed_point)
        encoded.append(ring)
        clipped += c
    decoded = fixed_point.decode(ring_sum(encoded, fixed_point))
    summed_update, total_weight = decoded[:-1], float(decoded[-1])
    new_global = strategy.aggregate(global_params, summed_update, total_weight)
    return new_global, RoundInfo(len(updates), total_weight, clipped, summed_update)
