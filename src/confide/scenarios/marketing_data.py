"""Deterministic synthetic data for the precision-marketing parties (``confide demo marketing``, tests).

People are keyed by Chinese mobile numbers (``+86`` and 11 digits: ``1``, a real carrier prefix digit
``3-9``, nine more digits). Two parties each hold one CSV in their org's data folder:

* bank    ``customers.csv``: ``phone, asset_tier, assets, products_held, age, responded``, one row per
  customer. ``asset_tier`` (0-3) bins ``assets`` (CNY) at 50k / 200k / 1M; ``responded`` is 0/1, the
  customer's answer to a past campaign.
* telecom ``subscribers.csv``: ``phone, monthly_spend, data_gb, tenure_months, spend_tier``, one row
  per subscriber. ``spend_tier`` (0-3) bins ``monthly_spend`` (CNY) at 60 / 120 / 250.

About :data:`OVERLAP` (60 %) of the bank's customers are also subscribers; the telecom has as many
subscribers again that the bank does not know.

Every person has a hidden ``wealth`` and ``engagement`` (standard normal). Wealth drives assets,
products held and spend; engagement drives data usage, products and spend; age lowers data usage
and raises tenure. The past response is drawn from a logistic model of standardized assets, products,
spend, data usage and tenure (and a little age), so a response model on the joined features learns
much more than one on the bank's columns alone (printed by ``python -m confide.scenarios.marketing_data``).

Deterministic: one seeded :class:`numpy.random.Generator`, no clock. ``canaries`` plants
:data:`CANARY_VALUES` into the telecom-only rows (never aligned with the bank), so a test can look
for them (and the telecom-only phone numbers) on the bank's side.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "ASSET_TIERS",
    "CANARY_VALUES",
    "OVERLAP",
    "SPEND_TIERS",
    "MarketingData",
    "generate_marketing_data",
    "write_marketing_data",
]

OVERLAP = 0.6
ASSET_TIERS = (50_000.0, 200_000.0, 1_000_000.0)
SPEND_TIERS = (60.0, 120.0, 250.0)
BANK_COLUMNS = ["phone", "asset_tier", "assets", "products_held", "age", "responded"]
TELECOM_COLUMNS = ["phone", "monthly_spend", "data_gb", "tenure_months", "spend_tier"]
CANARY_VALUES = {"monthly_spend": "98765.43", "data_gb": "8642.97", "tenure_months": "9753186420"}
CANARY_ROWS = 5
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MarketingData:
    bank: dict[str, list[object]]  # column -> values, in file order
    telecom: dict[str, list[object]]
    overlap: list[str]  # phones in both, sorted


def _phones(rng: np.random.Generator, n: int) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        second = rng.integers(3, 10, n)
        rest = rng.integers(0, 10**9, n)
        for a, b in zip(second, rest, strict=True):
            p = f"+861{a}{b:09d}"
            if p not in seen:
                seen.add(p)
                out.append(p)
            if len(out) == n:
                break
    return out


def _z(x: Floats) -> Floats:
    out: Floats = (x - x.mean()) / x.std()
    return out


def generate_marketing_data(customers: int = 20_000, seed: int = 7, canaries: bool = False) -> MarketingData:
    """The bank's ``customers`` and the telecom's subscribers (``OVERLAP`` of them shared)."""
    rng = np.random.default_rng(seed)
    n_shared = round(customers * OVERLAP)
    n_tel_only = n_shared  # the telecom knows as many people again that the bank does not
    total = customers + n_tel_only
    phones = _phones(rng, total)
    # clipped: no extreme outliers (SS-LR's degree-3 sigmoid is only one on [-8, 8])
    wealth, engage = (
        np.clip(rng.standard_normal(total), -2.5, 2.5),
        np.clip(rng.standard_normal(total), -2.5, 2.5),
    )
    age = rng.integers(20, 76, total).astype(np.float64)
    assets = np.round(np.exp(11.6 + 0.9 * wealth + 0.15 * rng.standard_normal(total) + 0.01 * (age - 45)), 2)
    products: Floats = np.clip(rng.poisson(np.exp(0.5 + 0.35 * wealth + 0.3 * engage)), 1, 9).astype(
        np.float64
    )
    spend = np.round(np.exp(4.5 + 0.35 * wealth + 0.3 * engage + 0.3 * rng.standard_normal(total)), 2)
    gb: Floats = 25 + 9 * engage - 0.35 * (age - 45) + 5 * rng.standard_normal(total)
    data_gb: Floats = np.maximum(gb, 0.5).round(1)
    tenure: Floats = np.clip(np.round(6 + 1.6 * (age - 20) + 25 * rng.standard_normal(total)), 1, 300)
    logit: Floats = (
        -2.2
        + 0.7 * _z(np.log(assets))
        + 0.3 * _z(products)
        + 0.6 * _z(np.log(spend))
        + 0.5 * _z(data_gb)
        + 0.4 * _z(tenure)
        - 0.15 * _z(age)
    )
    responded = (rng.random(total) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    # people 0..customers-1 are the bank's; the first n_shared of them (after a shuffle) are subscribers
    order = rng.permutation(customers)
    bank_idx = order
    tel_idx = np.concatenate([order[:n_shared], np.arange(customers, total)])
    tel_idx = tel_idx[rng.permutation(len(tel_idx))]
    bank = {
        "phone": [phones[i] for i in bank_idx],
        "asset_tier": [int(v) for v in np.digitize(assets[bank_idx], ASSET_TIERS)],
        "assets": [float(v) for v in assets[bank_idx]],
        "products_held": [int(v) for v in products[bank_idx]],
        "age": [int(v) for v in age[bank_idx]],
        "responded": [int(v) for v in responded[bank_idx]],
    }
    telecom: dict[str, list[object]] = {
        "phone": [phones[i] for i in tel_idx],
        "monthly_spend": [float(v) for v in spend[tel_idx]],
        "data_gb": [float(v) for v in data_gb[tel_idx]],
        "tenure_months": [int(v) for v in tenure[tel_idx]],
        "spend_tier": [int(v) for v in np.digitize(spend[tel_idx], SPEND_TIERS)],
    }
    if canaries:
        only = [r for r, i in enumerate(tel_idx) if i >= customers][:CANARY_ROWS]
        for r in only:
            telecom["monthly_spend"][r] = float(CANARY_VALUES["monthly_spend"])
            telecom["data_gb"][r] = float(CANARY_VALUES["data_gb"])
            telecom["tenure_months"][r] = int(CANARY_VALUES["tenure_months"])
            telecom["spend_tier"][r] = 3
    overlap = sorted(phones[i] for i in order[:n_shared])
    return MarketingData(bank, dict(telecom), overlap)


def _write(path: Path, columns: list[str], data: dict[str, list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(zip(*(data[c] for c in columns), strict=True))


def write_marketing_data(
    folders: dict[str, Path],
    *,
    customers: int = 20_000,
    seed: int = 7,
    canaries: bool = False,
    bank: str = "bank",
    telecom: str = "telecom",
) -> MarketingData:
    """Write ``customers.csv`` into ``folders[bank]`` and ``subscribers.csv`` into ``folders[telecom]``."""
    d = generate_marketing_data(customers, seed, canaries)
    _write(folders[bank] / "customers.csv", BANK_COLUMNS, d.bank)
    _write(folders[telecom] / "subscribers.csv", TELECOM_COLUMNS, d.telecom)
    return d


def pooled(d: MarketingData) -> tuple[list[str], Floats, Floats, Floats]:
    """The aligned rows in plaintext (sorted phones; bank features; telecom features; labels) - a
    reference only the generator can compute: no party ever holds this table."""
    b = {p: i for i, p in enumerate(d.bank["phone"])}
    t = {p: i for i, p in enumerate(d.telecom["phone"])}
    bank_cols = [np.asarray(d.bank[c], dtype=np.float64) for c in ("assets", "products_held", "age")]
    tel_cols = [
        np.asarray(d.telecom[c], dtype=np.float64) for c in ("monthly_spend", "data_gb", "tenure_months")
    ]
    bi = np.array([b[p] for p in d.overlap], dtype=np.int64)
    ti = np.array([t[p] for p in d.overlap], dtype=np.int64)
    bx = np.column_stack([c[bi] for c in bank_cols])
    tx = np.column_stack([c[ti] for c in tel_cols])
    y = np.asarray(d.bank["responded"], dtype=np.float64)[bi]
    return d.overlap, bx, tx, y


if __name__ == "__main__":  # pragma: no cover - a quick look at the signal
    from ..engines.mpc.logreg import LrSpec, auc, predict_scores, train_plain

    def _std(x: Floats) -> Floats:
        out: Floats = (x - x.mean(axis=0)) / x.std(axis=0)
        return out

    _, bx, tx, y = pooled(generate_marketing_data())
    for name, x in (("bank only", _std(bx)), ("joined", np.hstack([_std(bx), _std(tx)]))):
        s = LrSpec(len(y), x.shape[1], 0, epochs=5, batch_size=256)
        w = train_plain(x, y, s)
        print(name, "AUC", round(auc(predict_scores(x, w), y), 4), "response rate", y.mean())
