from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from confide.engines.fl.dp import (
    DpConfig,
    DpConfigError,
    PrivacyReport,
    clip_update,
    delta_for,
    epsilon,
    epsilon_rdp,
    epsilon_rdp_classic,
    privatize,
    report,
)
from confide.engines.fl.errors import FlError

GRID = [(0.5, 1), (0.5, 20), (1.0, 1), (1.0, 10), (2.0, 20), (5.0, 100), (0.8, 300)]
DELTAS = [1e-3, 1e-5, 1e-8]


def hockey_stick(mu: float, eps: float) -> float:
    """sup_S P[N(mu,1) in S] - e^eps P[N(0,1) in S] by numerical integration (independent of dp.py)."""
    y = np.linspace(-40.0, mu + 40.0, 400_001)
    p = np.exp(-0.5 * (y - mu) ** 2) / math.sqrt(2 * math.pi)
    q = np.exp(eps - 0.5 * y**2) / math.sqrt(2 * math.pi)
    return float(np.trapezoid(np.maximum(p - q, 0.0), y))


def improved_objective(rho: float, alpha: float, delta: float) -> float:
    return rho * alpha + math.log((alpha - 1) / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)


# --- exact (analytic Gaussian) ---------------------------------------------------------------------


def test_exact_epsilon_known_answer_z1() -> None:
    eps = epsilon(1.0, 1, 1e-5)
    assert eps == pytest.approx(4.377178, abs=1e-5)
    # independent check: the hockey-stick divergence of N(1,1) vs N(0,1) at that eps is delta
    assert hockey_stick(1.0, eps) == pytest.approx(1e-5, rel=1e-6)
    assert hockey_stick(1.0, eps - 0.01) > 1e-5  # and eps is the smallest such


def test_composition_is_one_gaussian_with_sqrt_k_mu() -> None:
    # 10 rounds at z=1 are one Gaussian with mu = sqrt(10); 4 rounds at z=2 equal 1 round at z=1
    eps = epsilon(1.0, 10, 1e-5)
    assert hockey_stick(math.sqrt(10.0), eps) == pytest.approx(1e-5, rel=1e-6)
    assert epsilon(2.0, 4, 1e-5) == pytest.approx(epsilon(1.0, 1, 1e-5), rel=1e-12)


@pytest.mark.parametrize(("z", "rounds"), GRID)
@pytest.mark.parametrize("delta", DELTAS)
def test_delta_for_round_trips(z: float, rounds: int, delta: float) -> None:
    eps = epsilon(z, rounds, delta)
    assert eps > 0
    assert delta_for(z, rounds, eps) == pytest.approx(delta, rel=1e-9)
    assert delta_for(z, rounds, eps) <= delta * (1 + 1e-12)  # rounded toward the safe side


def test_delta_for_closed_form_at_zero_and_limits() -> None:
    mu = math.sqrt(3) / 1.5
    assert delta_for(1.5, 3, 0.0) == pytest.approx(math.erf(mu / (2 * math.sqrt(2))), rel=1e-14)
    assert delta_for(1.0, 1, math.inf) == 0.0
    assert delta_for(0.0, 5, 3.0) == 1.0
    # delta(0) below the target: (0, delta)-DP already
    assert epsilon(1e4, 1, 0.5) == 0.0


@pytest.mark.parametrize("target", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("delta", [1e-5, 1e-8])
def test_dwork_roth_calibration_is_respected(target: float, delta: float) -> None:
    # Dwork & Roth Thm A.1: sigma = sqrt(2 ln(1.25/delta)) / eps (sensitivity 1) is (eps, delta)-DP
    z = math.sqrt(2 * math.log(1.25 / delta)) / target
    assert epsilon(z, 1, delta) <= target
    assert epsilon_rdp(z, 1, delta) >= epsilon(z, 1, delta)


def test_large_epsilon_does_not_overflow() -> None:
    eps = epsilon(0.3, 1000, 1e-5)
    assert math.isfinite(eps)
    assert eps > 1000 / (2 * 0.09)  # at least the mean privacy loss mu^2/2
    assert delta_for(0.3, 1000, eps) == pytest.approx(1e-5, rel=1e-9)


# --- RDP -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("z", "rounds"), GRID)
@pytest.mark.parametrize("delta", DELTAS)
def test_exact_le_rdp_improved_le_rdp_classic(z: float, rounds: int, delta: float) -> None:
    exact, rdp, classic = (
        epsilon(z, rounds, delta),
        epsilon_rdp(z, rounds, delta),
        epsilon_rdp_classic(z, rounds, delta),
    )
    assert exact <= rdp < classic


@pytest.mark.parametrize(("z", "rounds"), GRID)
@pytest.mark.parametrize("delta", DELTAS)
def test_rdp_classic_matches_closed_form(z: float, rounds: int, delta: float) -> None:
    # min_alpha rho*alpha + L/(alpha-1) = rho + 2 sqrt(rho L), at alpha = 1 + sqrt(L/rho)
    rho, big_l = rounds / (2 * z * z), math.log(1 / delta)
    assert epsilon_rdp_classic(z, rounds, delta) == pytest.approx(rho + 2 * math.sqrt(rho * big_l), rel=1e-12)


@pytest.mark.parametrize(("z", "rounds"), GRID)
def test_rdp_improved_is_minimum_of_objective(z: float, rounds: int) -> None:
    delta = 1e-5
    rho = rounds / (2 * z * z)
    eps = epsilon_rdp(z, rounds, delta)
    for alpha in [1.05, 1.5, 2.0, 3.0, 10.0, 32.0, 100.0, 1000.0]:
        assert eps <= improved_objective(rho, alpha, delta) + 1e-12
    # a fine brute-force grid cannot beat the optimiser by more than rounding
    alphas = 1 + np.logspace(-3, 4, 200_001)
    objective = (
        rho * alphas + np.log((alphas - 1) / alphas) - (math.log(delta) + np.log(alphas)) / (alphas - 1)
    )
    assert eps <= float(np.min(objective)) + 1e-9
    assert eps >= float(np.min(objective)) - 1e-6


def test_rdp_known_answer_alpha_10() -> None:
    # z=1, one round, delta=1e-5: rdp(10) = 5; objective = 5 + log(0.9) - (log 1e-5 + log 10)/9
    at_10 = 5 + math.log(0.9) - (math.log(1e-5) + math.log(10)) / 9
    assert at_10 == pytest.approx(5 + math.log(0.9) + 4 * math.log(10) / 9, rel=1e-15)
    assert epsilon_rdp(1.0, 1, 1e-5) <= at_10
    assert epsilon_rdp(1.0, 1, 1e-5) == pytest.approx(4.728387, abs=1e-5)


# --- monotonicity and scaling --------------------------------------------------------------------


def test_epsilon_decreases_with_noise_and_grows_with_rounds() -> None:
    zs = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 4.0, 10.0]
    for fn in (epsilon, epsilon_rdp, epsilon_rdp_classic):
        by_z = [fn(z, 10, 1e-5) for z in zs]
        assert all(a > b for a, b in pairwise(by_z))
        by_rounds = [fn(1.0, r, 1e-5) for r in (1, 2, 5, 10, 100, 1000)]
        assert all(a < b for a, b in pairwise(by_rounds))
    # large z: eps = mu * x(mu) with mu = sqrt(rounds)/z and x(mu) ~ sqrt(2 log(mu/delta)) varying only
    # logarithmically, so x4 rounds is a bit over x2 eps (not x4), x100 rounds a bit over x10
    for z in (50.0, 1000.0):
        assert 2.0 < epsilon(z, 400, 1e-5) / epsilon(z, 100, 1e-5) < 2.3
        assert 10.0 < epsilon(z, 10_000, 1e-5) / epsilon(z, 100, 1e-5) < 14.0


def test_no_noise_means_no_guarantee() -> None:
    assert epsilon(0.0, 1, 1e-5) == math.inf
    assert epsilon_rdp(0.0, 1, 1e-5) == math.inf
    assert epsilon_rdp_classic(0.0, 1, 1e-5) == math.inf


# --- clipping and noise --------------------------------------------------------------------------


def test_clip_update_short_vector_untouched() -> None:
    x = np.array([0.3, -0.4, 0.0])  # norm 0.5
    out, clipped = clip_update(x, 1.0)
    assert not clipped
    assert out.tolist() == x.tolist()
    assert out is not x
    out[0] = 9.0
    assert x[0] == 0.3  # a copy
    empty, was_empty = clip_update(np.zeros(0), 1.0)
    assert empty.size == 0
    assert not was_empty
    exact, was = clip_update(np.array([3.0, 4.0]), 5.0)  # norm exactly C: not clipped
    assert not was
    assert exact.tolist() == [3.0, 4.0]


def test_clip_update_long_vector_scaled_to_c() -> None:
    rng = np.random.default_rng(1)
    for c in (0.1, 1.0, 7.3):
        x = rng.normal(0, 10.0, size=(50, 4))
        out, clipped = clip_update(x, c)
        assert clipped
        assert out.shape == x.shape
        norm = float(np.linalg.norm(out))
        assert norm <= c
        assert norm == pytest.approx(c, rel=1e-12)
        np.testing.assert_allclose(out / norm, x / np.linalg.norm(x), rtol=1e-12)  # direction kept
    huge, clipped = clip_update(np.array([1e300, -1e300]), 2.0)  # no overflow in the norm
    assert clipped
    np.testing.assert_allclose(huge, [math.sqrt(2), -math.sqrt(2)], rtol=1e-12)


def test_privatize_noise_std() -> None:
    cfg = DpConfig(clip_norm=2.0, noise_multiplier=1.5, min_clients=4, delta=1e-5)
    assert cfg.client_noise_std() == pytest.approx(1.5 * 2.0 / 2.0)
    update = np.zeros(200_000)
    update[0] = 100.0  # long: clipped to norm 2, one coordinate of 2.0
    noisy, clipped = privatize(update, cfg, np.random.default_rng(7))
    assert clipped
    noise = noisy.copy()
    noise[0] -= 2.0
    assert float(np.std(noise)) == pytest.approx(cfg.client_noise_std(), rel=0.01)
    assert abs(float(np.mean(noise))) < 0.01
    assert update[0] == 100.0  # input untouched


def test_sum_of_m_clients_noise_has_std_zc() -> None:
    cfg = DpConfig(clip_norm=0.5, noise_multiplier=1.2, min_clients=5, delta=1e-6)
    rngs = np.random.default_rng(11).spawn(cfg.min_clients)
    total = sum(privatize(np.zeros(100_000), cfg, r)[0] for r in rngs)
    assert float(np.std(total)) == pytest.approx(1.2 * 0.5, rel=0.01)


def test_privatize_without_noise_only_clips() -> None:
    cfg = DpConfig(clip_norm=1.0, noise_multiplier=0.0, min_clients=3, delta=1e-5)
    out, clipped = privatize(np.array([3.0, 4.0]), cfg, np.random.default_rng(0))
    assert clipped
    np.testing.assert_allclose(out, [0.6, 0.8], rtol=1e-12)


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clip_norm": 0.0}, "clip_norm"),
        ({"clip_norm": -1.0}, "clip_norm"),
        ({"clip_norm": math.inf}, "clip_norm"),
        ({"clip_norm": math.nan}, "clip_norm"),
        ({"noise_multiplier": -0.1}, "noise_multiplier"),
        ({"noise_multiplier": math.nan}, "noise_multiplier"),
        ({"noise_multiplier": math.inf}, "noise_multiplier"),
        ({"min_clients": 0}, "min_clients"),
        ({"min_clients": 2.0}, "min_clients"),
        ({"min_clients": True}, "min_clients"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"delta": math.nan}, "delta"),
    ],
)
def test_bad_configs_refused(kwargs: dict[str, float], match: str) -> None:
    base: dict[str, float] = {"clip_norm": 1.0, "noise_multiplier": 1.0, "min_clients": 2, "delta": 1e-5}
    base.update(kwargs)
    with pytest.raises(DpConfigError, match=match):
        DpConfig(**base)  # type: ignore[arg-type]


def test_bad_arguments_refused() -> None:
    assert issubclass(DpConfigError, FlError)
    assert issubclass(DpConfigError, ValueError)
    for fn in (epsilon, epsilon_rdp, epsilon_rdp_classic):
        with pytest.raises(DpConfigError, match="rounds"):
            fn(1.0, 0, 1e-5)
        with pytest.raises(DpConfigError, match="delta"):
            fn(1.0, 1, 0.0)
        with pytest.raises(DpConfigError, match="noise_multiplier"):
            fn(-1.0, 1, 1e-5)
    with pytest.raises(DpConfigError, match="eps"):
        delta_for(1.0, 1, -0.5)
    with pytest.raises(DpConfigError, match="NaN or infinite"):
        clip_update(np.array([1.0, math.nan]), 1.0)
    with pytest.raises(DpConfigError, match="NaN or infinite"):
        clip_update(np.array([math.inf]), 1.0)
    with pytest.raises(DpConfigError, match="clip_norm"):
        clip_update(np.array([1.0]), 0.0)
    cfg = DpConfig(clip_norm=1.0, noise_multiplier=1.0, min_clients=2, delta=1e-5)
    with pytest.raises(DpConfigError, match="rounds"):
        report(cfg, 0)


# --- report --------------------------------------------------------------------------------------


def test_report_and_record() -> None:
    cfg = DpConfig(clip_norm=0.5, noise_multiplier=1.0, min_clients=3, delta=1e-5)
    rep = report(cfg, 10)
    assert isinstance(rep, PrivacyReport)
    assert rep.epsilon == epsilon(1.0, 10, 1e-5)
    assert rep.epsilon_rdp == epsilon_rdp(1.0, 10, 1e-5)
    rec = rep.as_record()
    assert all(isinstance(v, str | int) and not isinstance(v, bool | float) for v in rec.values())
    assert rec["dp_min_clients"] == 3
    assert rec["dp_rounds"] == 10
    assert rec["dp_delta"] == "0.00001"
    assert rec["dp_clip_norm"] == "0.5"
    assert rec["dp_noise_multiplier"] == "1.0"
    eps_str = rec["dp_epsilon"]
    assert isinstance(eps_str, str)
    assert eps_str == "17.8566"  # 17.85658..., rounded up to 4 decimals
    assert float(eps_str) >= rep.epsilon
    assert float(eps_str) - rep.epsilon < 1e-4
    assert rec["dp_epsilon_rdp"] == "19.0473"


def test_record_without_noise() -> None:
    rec = report(DpConfig(clip_norm=1.0, noise_multiplier=0.0, min_clients=1, delta=1e-8), 3).as_record()
    assert rec["dp_epsilon"] == "inf"
    assert rec["dp_epsilon_rdp"] == "inf"
    assert rec["dp_delta"] == "0.00000001"


def test_extreme_noise_multipliers_do_not_crash() -> None:
    for z in (1e-3, 1e-100, 1e-320):  # tiny z: huge or infinite epsilon, never an overflow error
        eps, rdp = epsilon(z, 10, 1e-5), epsilon_rdp(z, 10, 1e-5)
        assert eps >= 10 / (2 * 1e-6)
        assert eps <= rdp <= epsilon_rdp_classic(z, 10, 1e-5)
    # huge z: delta(0) = erf(mu / 2 sqrt 2) is already below delta, so (0, delta)-DP
    assert epsilon(1e7, 10, 1e-5) == 0.0
    assert epsilon_rdp(1e7, 10, 1e-5) >= 0.0
