"""Differential privacy for FL updates: L2 clipping, distributed Gaussian noise, privacy accounting.

Mechanism (DP-FedAvg, McMahan et al. 2018, "Learning differentially private recurrent language
models", with the noise split among the clients as in secure-aggregation deployments):

* Each client clips its model delta to L2 norm ``<= C`` (``clip_norm``, ``clip_update``). With DP on,
  every client's update has weight 1 (unweighted average: a sample-count weight would be a second,
  unbounded channel), so one client changes the *sum* by a vector of L2 norm at most ``C``: the
  L2 sensitivity of the summed update is ``C`` under client-level adjacency.
* Distributed Gaussian noise (``privatize``): the server sees only the sum (secure aggregation), so
  no single party adds the whole noise. Each client adds ``N(0, (z*C)^2 / m)`` per coordinate, where
  ``z`` is the noise multiplier and ``m = min_clients`` is the secure-aggregation threshold ``t``: a
  sum is only ever produced with at least ``m`` survivors, so it carries at least ``m`` noise shares
  and its noise std is at least ``z*C`` whatever the dropouts. With ``n > m`` survivors the noise is
  ``sqrt(n/m) * z*C`` -- larger than accounted for, i.e. the accounting is conservative (at a cost
  in accuracy; choose ``m`` close to the expected number of survivors).

  **Trust assumption**: this holds only if the clients are honest about their noise. A client that
  omits its share lowers the total noise (``m - k`` honest shares give std ``sqrt((m-k)/m) * z*C``),
  and the reported epsilon no longer holds; a client cannot be checked for this under secure
  aggregation. The server, in turn, learns only the noisy sum.

* Adjacency. The analysis treats the noise of the sum as one ``N(0, (z*C)^2 I)`` that does not
  depend on the client whose data changes: neighbouring inputs differ in one client's update being
  replaced by zero while that client's noise share stays in the sum -- the "zero-out" notion
  (Kairouz et al. 2021, "Practical and private (deep) learning without sampling or shuffling"),
  under which the sum moves by at most ``C``, the add-or-remove bound. The server knows who took
  part (it runs the protocol with them); DP bounds what it can learn about their *data*, not their
  participation. Replacing one update by another arbitrary one moves the sum by up to ``2C`` (the
  same epsilon as noise multiplier ``z/2``). A literal add/remove of a client also adds or removes
  one noise share, so the two outputs are Gaussians of slightly different variance; this accounting
  does not model that case exactly.

Accounting. Every round asks all clients (no subsampling, no amplification), so ``rounds`` rounds
release ``rounds`` Gaussian mechanisms with sensitivity ``C`` and noise std ``z*C``; the ratio
``1/z`` is all that matters (``C`` and ``m`` cancel out).

* Exact (``epsilon``, ``delta_for``): the privacy profile of the Gaussian mechanism (Balle & Wang
  2018, "Improving the Gaussian mechanism for differential privacy", Thm. 8) is, with
  ``mu = sensitivity / std``::

      delta(eps) = Phi(-eps/mu + mu/2) - e^eps * Phi(-eps/mu - mu/2)

  and the composition of ``k`` Gaussian mechanisms with the same ``mu`` is exactly one Gaussian
  mechanism with ``mu_k = sqrt(k) * mu`` (the privacy-loss random variables are Gaussian and add:
  ``N(mu^2/2, mu^2)`` each, in Gaussian-DP terms ``sqrt(k) mu``-GDP, Dong, Roth & Su 2019). So
  ``delta(eps)`` with ``mu = sqrt(rounds)/z`` is the tight profile, and ``eps(delta)`` is its inverse
  (found by bisection; ``delta(eps)`` is decreasing). This is the reported epsilon.
* Rényi DP (``epsilon_rdp``): the Gaussian mechanism is ``(alpha, alpha*mu^2/2)``-RDP for every
  ``alpha > 1`` (Mironov 2017), and RDP composes additively, so ``rounds`` rounds give
  ``rdp(alpha) = rounds * alpha / (2 z^2)``. The improved conversion (Canonne, Kamath & Steinke 2020,
  Prop. 12; Balle et al. 2020, Thm. 21) gives ``(eps, delta)``-DP with::

      eps = min_{alpha > 1} rdp(alpha) + log((alpha-1)/alpha) - (log(delta) + log(alpha)) / (alpha-1)

  and ``epsilon_rdp_classic`` the classic ``min_alpha rdp(alpha) + log(1/delta)/(alpha-1)`` (Mironov
  2017, Prop. 3; for the Gaussian its minimum has the closed form ``rho + 2 sqrt(rho log(1/delta))``
  with ``rho = rounds/(2 z^2)``). RDP is an upper bound, looser than the exact profile; it is kept
  because it is what most FL papers and libraries (TF Privacy, Opacus) report, and as a cross-check:
  ``epsilon <= epsilon_rdp <= epsilon_rdp_classic``.

Numerics: ``e^eps * Phi(-eps/mu - mu/2)`` is evaluated as ``phi(-eps/mu + mu/2)`` times a Mills
ratio (the ``e^eps`` cancels exactly), so large ``eps`` (small ``z``, many rounds) does not overflow.
The two terms of ``delta(eps)`` nearly cancel when ``mu`` is small (large ``z``): the relative
cancellation is about ``mu^2 / eps``, which leaves ~10 significant digits for ``z`` up to ~10^4.
Every value of the RDP objective at any ``alpha > 1`` is a valid bound, so the grid search and its
refinement can only be loose, never unsound.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

import numpy as np

from .errors import FlError
from .models import FloatArray

__all__ = [
    "DpConfig",
    "DpConfigError",
    "PrivacyReport",
    "clip_update",
    "delta_for",
    "epsilon",
    "epsilon_rdp",
    "epsilon_rdp_classic",
    "privatize",
    "report",
]

EPSILON_DECIMALS = 4  # epsilons in a ledger record are rounded *up* to this many decimals

_SQRT2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
# RDP orders: alpha - 1 log-spaced over [1e-4, 1e6] (alpha from 1.0001 to ~10^6), plus the integer
# orders 2..256 that RDP accountants customarily use. The optimum of the Gaussian's objective is near
# ``1 + z sqrt(2 log(1/delta) / rounds)`` (the classic closed form), which this range covers for
# ``2e-5 <= z / sqrt(rounds) <= 2e5`` at delta = 1e-5; outside it the result stays a valid (looser)
# bound, and the closed-form order itself is always evaluated too.
_ORDERS = np.unique(np.concatenate([1.0 + np.logspace(-4.0, 6.0, 2001), np.arange(2.0, 257.0)]))
_GOLDEN_STEPS = 80


class DpConfigError(FlError, ValueError):
    """Bad DP parameters (clip norm, noise multiplier, threshold, delta, rounds) or a non-finite update."""


@dataclass(frozen=True, slots=True)
class DpConfig:
    """DP parameters every client and the server agree on for a training run.

    ``clip_norm`` is ``C`` (L2 bound of one client's delta), ``noise_multiplier`` is ``z`` (noise std
    of the sum in units of ``C``; 0 means clipping only, no privacy guarantee), ``min_clients`` is
    ``m``, the secure-aggregation threshold (a sum contains at least ``m`` noise shares) and
    ``delta`` the target delta of the reported ``(epsilon, delta)``.
    """

    clip_norm: float
    noise_multiplier: float
    min_clients: int
    delta: float

    def __post_init__(self) -> None:
        _check_clip_norm(self.clip_norm)
        _check_noise_multiplier(self.noise_multiplier)
        if isinstance(self.min_clients, bool) or not isinstance(self.min_clients, numbers.Integral):
            raise DpConfigError(f"min_clients must be an int, got {self.min_clients!r}")
        if self.min_clients < 1:
            raise DpConfigError(f"min_clients must be >= 1, got {self.min_clients}")
        _check_delta(self.delta)

    def client_noise_std(self) -> float:
        """One client's per-coordinate noise std ``z*C/sqrt(m)``: ``m`` shares sum to std ``z*C``."""
        return self.noise_multiplier * self.clip_norm / math.sqrt(self.min_clients)


def _check_clip_norm(clip_norm: float) -> None:
    if not (isinstance(clip_norm, numbers.Real) and math.isfinite(clip_norm) and clip_norm > 0):
        raise DpConfigError(f"clip_norm must be a positive finite number, got {clip_norm!r}")


def _check_noise_multiplier(z: float) -> None:
    if not (isinstance(z, numbers.Real) and math.isfinite(z) and z >= 0):
        raise DpConfigError(f"noise_multiplier must be a finite number >= 0, got {z!r}")


def _check_delta(delta: float) -> None:
    if not (isinstance(delta, numbers.Real) and 0 < delta < 1):
        raise DpConfigError(f"delta must be in (0, 1), got {delta!r}")


def _check_rounds(rounds: int) -> None:
    if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral):
        raise DpConfigError(f"rounds must be an int, got {rounds!r}")
    if rounds < 1:
        raise DpConfigError(f"rounds must be >= 1, got {rounds}")


# --- client side ----------------------------------------------------------------------------------


def clip_update(update: FloatArray, clip_norm: float) -> tuple[FloatArray, bool]:
    """A float64 copy of ``update`` scaled to L2 norm ``<= clip_norm``, and whether it was scaled.

    The norm is taken over all coordinates (any shape). A vector already within the bound is copied
    unchanged; a longer one is multiplied by ``clip_norm / norm`` (its direction is kept). The norm
    is computed on ``update / max|update|`` so that huge coordinates do not overflow, and the result
    is nudged down by an ulp if rounding left it a hair above ``clip_norm``: the sensitivity bound
    must hold exactly, not up to rounding.
    """
    _check_clip_norm(clip_norm)
    x = np.array(update, dtype=np.float64, copy=True)
    if not np.all(np.isfinite(x)):
        raise DpConfigError("cannot clip an update with NaN or infinite coordinates")
    norm = _l2_norm(x)
    if norm <= clip_norm:
        return x, False
    x *= clip_norm / norm
    while _l2_norm(x) > clip_norm:  # at most a step or two: each shrinks by ~1 ulp
        x *= 1.0 - 2.0**-52
    return x, True


def _l2_norm(x: FloatArray) -> float:
    scale = float(np.max(np.abs(x))) if x.size else 0.0
    if scale == 0.0:
        return 0.0
    return scale * float(np.sqrt(np.sum(np.square(x / scale))))


def privatize(update: FloatArray, config: DpConfig, rng: np.random.Generator) -> tuple[FloatArray, bool]:
    """One client's DP update: clip to ``config.clip_norm``, add ``N(0, (z*C)^2/m)`` per coordinate.

    Returns ``(noisy clipped update, whether clipping changed it)``. The client then feeds this vector,
    with weight 1, to secure aggregation; ``m`` such shares make the sum's noise std ``z*C``. ``rng``
    must be the client's own, unpredictable to others in a deployment (a seeded generator only for
    tests and simulations): noise the server can predict is no noise.
    """
    clipped, was_clipped = clip_update(update, config.clip_norm)
    std = config.client_noise_std()
    if std > 0:
        clipped += rng.normal(0.0, std, size=clipped.shape)
    return clipped, was_clipped


# --- exact accounting (analytic Gaussian mechanism) -----------------------------------------------


def _mills_ratio(y: float) -> float:
    """Mills ratio ``Phi(-y) / phi(y)`` for ``y >= 0`` (``phi`` the standard normal density).

    Up to ``y = 35`` directly, ``Phi(-y) sqrt(2 pi) e^(y^2/2)`` (``erfc`` is still representable,
    ~1e-268, and ``e^(y^2/2)`` ~1e266 does not overflow; relative error ~ ``y^2`` ulp); beyond, the
    asymptotic series ``(1 - 1/y^2 + 3/y^4 - 15/y^6 + 105/y^8) / y``, whose truncation error there is
    below 1e-12 relative.
    """
    if y < 35.0:
        return 0.5 * math.erfc(y / _SQRT2) * math.exp(0.5 * y * y) * _SQRT_2PI
    r = 1.0 / (y * y)
    return (1.0 - r * (1.0 - r * (3.0 - r * (15.0 - r * 105.0)))) / y


def _gaussian_delta(mu: float, eps: float) -> float:
    """``delta(eps) = Phi(a) - e^eps Phi(-y)``, ``a = -eps/mu + mu/2``, ``y = eps/mu + mu/2``.

    Since ``eps - y^2/2 = -a^2/2``, the second term is ``phi(a) * R(y)`` with ``R`` the Mills ratio:
    no ``e^eps`` is ever formed, so a huge ``eps`` (tiny ``z``, many rounds) cannot overflow.
    """
    if math.isinf(mu):
        return 0.0 if math.isinf(eps) else 1.0
    if math.isinf(eps):
        return 0.0
    a = -eps / mu + mu / 2.0
    y = eps / mu + mu / 2.0
    first = 0.5 * math.erfc(-a / _SQRT2)
    second = math.exp(-0.5 * a * a) / _SQRT_2PI * _mills_ratio(y)
    return max(0.0, first - second)


def _mu(noise_multiplier: float, rounds: int) -> float:
    """Sensitivity/std of the ``rounds``-fold composition: ``sqrt(rounds) / z`` (inf when ``z = 0``)."""
    if noise_multiplier == 0:
        return math.inf
    return math.sqrt(rounds) / noise_multiplier


def delta_for(noise_multiplier: float, rounds: int, eps: float) -> float:
    """The smallest ``delta`` for which ``rounds`` rounds at ``z`` are ``(eps, delta)``-DP (exact).

    ``z = 0`` (no noise) gives 1 for every finite ``eps``; ``eps = inf`` gives 0.
    """
    _check_noise_multiplier(noise_multiplier)
    _check_rounds(rounds)
    if not (isinstance(eps, numbers.Real) and eps >= 0):
        raise DpConfigError(f"eps must be >= 0, got {eps!r}")
    return _gaussian_delta(_mu(noise_multiplier, rounds), float(eps))


def epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """The smallest ``eps`` for which ``rounds`` rounds at ``z`` are ``(eps, delta)``-DP (exact).

    Inverts the analytic-Gaussian profile by bisection: ``delta(eps)`` decreases from
    ``delta(0) = erf(mu / (2 sqrt 2))`` (if that is already ``<= delta`` the answer is 0) to 0.
    The bracket's upper end is found by doubling; the bisection runs until the bracket cannot shrink
    in float64, and the upper end is returned, so ``delta_for(result) <= delta`` (rounding toward
    the conservative side). ``z = 0`` gives ``inf``.
    """
    _check_noise_multiplier(noise_multiplier)
    _check_rounds(rounds)
    _check_delta(delta)
    mu = _mu(noise_multiplier, rounds)
    if math.isinf(mu):  # z = 0, or so small that sqrt(rounds)/z overflows
        return math.inf
    if _gaussian_delta(mu, 0.0) <= delta:
        return 0.0
    lo, hi = 0.0, 1.0
    while _gaussian_delta(mu, hi) > delta:
        lo, hi = hi, 2.0 * hi
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if _gaussian_delta(mu, mid) > delta:
            lo = mid
        else:
            hi = mid
    return hi


# --- Rényi DP accounting --------------------------------------------------------------------------


def _rdp_improved(alpha: float, rho: float, log_delta: float) -> float:
    return rho * alpha + math.log1p(-1.0 / alpha) - (log_delta + math.log(alpha)) / (alpha - 1.0)


def _rdp_classic(alpha: float, rho: float, log_delta: float) -> float:
    return rho * alpha - log_delta / (alpha - 1.0)


def _minimise_over_orders(rho: float, log_delta: float, improved: bool) -> float:
    """``min_alpha`` of the conversion objective: grid over ``_ORDERS``, then golden-section search.

    The search runs in ``t = log(alpha - 1)`` between the grid neighbours of the best grid order
    (the objective is unimodal there: convex in ``alpha`` for the classic conversion, and nearly so
    for the improved one). The classic closed-form optimum ``1 + sqrt(log(1/delta)/rho)`` is
    evaluated too. The result is the minimum over every order evaluated, hence a valid bound.
    """
    f = _rdp_improved if improved else _rdp_classic
    a = _ORDERS
    if improved:
        values = rho * a + np.log1p(-1.0 / a) - (log_delta + np.log(a)) / (a - 1.0)
    else:
        values = rho * a - log_delta / (a - 1.0)
    i = int(np.argmin(values))
    best = float(values[i])
    alpha_cf = 1.0 + math.sqrt(-log_delta / rho)
    if alpha_cf > 1.0:  # 1.0 exactly only for an absurd rho (z below ~1e-150)
        best = min(best, f(alpha_cf, rho, log_delta))
    lo = math.log(float(a[max(i - 1, 0)]) - 1.0)
    hi = math.log(float(a[min(i + 1, a.size - 1)]) - 1.0)
    g = (math.sqrt(5.0) - 1.0) / 2.0

    def h(t: float) -> float:
        return f(1.0 + math.exp(t), rho, log_delta)

    c, d = hi - g * (hi - lo), lo + g * (hi - lo)
    fc, fd = h(c), h(d)
    for _ in range(_GOLDEN_STEPS):
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - g * (hi - lo)
            fc = h(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + g * (hi - lo)
            fd = h(d)
        best = min(best, fc, fd)
    return max(0.0, best)


def _rdp_epsilon(noise_multiplier: float, rounds: int, delta: float, improved: bool) -> float:
    _check_noise_multiplier(noise_multiplier)
    _check_rounds(rounds)
    _check_delta(delta)
    if noise_multiplier == 0:
        return math.inf
    z2 = noise_multiplier * noise_multiplier
    if z2 == 0 or rounds / (2.0 * z2) > 1e100:  # z^2 underflows (or nearly): no meaningful guarantee
        return math.inf
    rho = rounds / (2.0 * z2)  # rdp(alpha) = rho * alpha
    return _minimise_over_orders(rho, math.log(delta), improved)


def epsilon_rdp(noise_multiplier: float, rounds: int, delta: float) -> float:
    """Epsilon from Rényi DP with the improved RDP-to-DP conversion (CKS 2020 / Balle et al. 2020).

    ``min_alpha rounds*alpha/(2 z^2) + log((alpha-1)/alpha) - (log delta + log alpha)/(alpha-1)``,
    clamped at 0; ``z = 0`` gives ``inf``. An upper bound of ``epsilon``.
    """
    return _rdp_epsilon(noise_multiplier, rounds, delta, improved=True)


def epsilon_rdp_classic(noise_multiplier: float, rounds: int, delta: float) -> float:
    """Epsilon from Rényi DP with the classic conversion ``min_alpha rdp(alpha) + log(1/delta)/(alpha-1)``.

    For comparison only (it is never smaller than ``epsilon_rdp``); ``z = 0`` gives ``inf``.
    """
    return _rdp_epsilon(noise_multiplier, rounds, delta, improved=False)


# --- report ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrivacyReport:
    """The privacy spent by ``rounds`` rounds of DP-FedAvg under ``DpConfig``.

    ``epsilon`` is exact (analytic Gaussian); ``epsilon_rdp`` the Rényi-DP bound, for comparison
    with the literature. Both are for the target ``delta`` and client-level adjacency.
    """

    clip_norm: float
    noise_multiplier: float
    min_clients: int
    rounds: int
    delta: float
    epsilon: float
    epsilon_rdp: float

    def as_record(self) -> dict[str, str | int]:
        """The report as ledger fields: ints, and decimal strings in place of floats.

        Parameters are written as the shortest decimal that round-trips to the float (``"1e-05"``
        becomes ``"0.00001"``, no exponent); epsilons are rounded *up* to ``EPSILON_DECIMALS``
        decimals, so the recorded budget is never below the computed one; an infinite epsilon
        (no noise) is ``"inf"``.
        """
        return {
            "dp_clip_norm": _decimal(self.clip_norm),
            "dp_noise_multiplier": _decimal(self.noise_multiplier),
            "dp_min_clients": int(self.min_clients),
            "dp_rounds": int(self.rounds),
            "dp_delta": _decimal(self.delta),
            "dp_epsilon": _decimal_up(self.epsilon),
            "dp_epsilon_rdp": _decimal_up(self.epsilon_rdp),
        }


def _decimal(x: float) -> str:
    return format(Decimal(repr(float(x))), "f")


def _decimal_up(x: float) -> str:
    if math.isinf(x):
        return "inf"
    quantum = Decimal(1).scaleb(-EPSILON_DECIMALS)
    return format(Decimal(float(x)).quantize(quantum, rounding=ROUND_CEILING), "f")


def report(config: DpConfig, rounds: int) -> PrivacyReport:
    """The privacy report of ``rounds`` full-participation rounds under ``config``."""
    _check_rounds(rounds)
    z = config.noise_multiplier
    return PrivacyReport(
        clip_norm=config.clip_norm,
        noise_multiplier=z,
        min_clients=config.min_clients,
        rounds=rounds,
        delta=config.delta,
        epsilon=epsilon(z, rounds, config.delta),
        epsilon_rdp=epsilon_rdp(z, rounds, config.delta),
    )
