"""The precision-marketing generator: deterministic, valid phone numbers, ~60 % overlap, real signal."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from confide.engines.mpc.logreg import LrSpec, auc, predict_scores, train_plain
from confide.scenarios.marketing_data import (
    ASSET_TIERS,
    CANARY_VALUES,
    SPEND_TIERS,
    generate_marketing_data,
    pooled,
    write_marketing_data,
)

PHONE = re.compile(r"^\+861[3-9]\d{9}$")


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    dirs = {s: {o: tmp_path / s / o for o in ("bank", "telecom")} for s in ("a", "b", "c")}
    write_marketing_data(dirs["a"], customers=1500, seed=3)
    write_marketing_data(dirs["b"], customers=1500, seed=3)
    write_marketing_data(dirs["c"], customers=1500, seed=4)
    for org, name in (("bank", "customers.csv"), ("telecom", "subscribers.csv")):
        a, b, c = ((dirs[s][org] / name).read_bytes() for s in ("a", "b", "c"))
        assert a == b and a != c
    with (dirs["a"]["bank"] / "customers.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1500 and set(rows[0]) == {
        "phone",
        "asset_tier",
        "assets",
        "products_held",
        "age",
        "responded",
    }


def test_phones_are_valid_unique_and_overlap_is_sixty_percent() -> None:
    d = generate_marketing_data(5000, seed=1)
    bank, tel = d.bank["phone"], d.telecom["phone"]
    assert all(isinstance(p, str) and PHONE.match(p) for p in bank + tel)
    assert len(set(bank)) == len(bank) and len(set(tel)) == len(tel)
    assert sorted(set(bank) & set(tel)) == d.overlap and len(d.overlap) == 3000
    tiers = np.digitize(np.asarray(d.bank["assets"], dtype=float), ASSET_TIERS)
    assert list(tiers) == d.bank["asset_tier"] and set(d.bank["asset_tier"]) == {0, 1, 2, 3}
    st = np.digitize(np.asarray(d.telecom["monthly_spend"], dtype=float), SPEND_TIERS)
    assert list(st) == d.telecom["spend_tier"] and set(d.telecom["spend_tier"]) == {0, 1, 2, 3}


def test_correlations_are_real_and_the_telecom_columns_add_signal() -> None:
    _, bx, tx, y = pooled(generate_marketing_data(8000, seed=2))
    assert 0.08 < y.mean() < 0.3
    spend, assets = tx[:, 0], bx[:, 0]
    assert np.corrcoef(np.log(spend), np.log(assets))[0, 1] > 0.3  # wealth drives both
    for col in (np.log(assets), bx[:, 1], np.log(spend), tx[:, 1]):  # each raises the response rate
        assert np.corrcoef(col, y)[0, 1] > 0.15
    # tenure raises it too, but grows with age, which lowers it: only the joint model separates them
    assert np.corrcoef(tx[:, 2], bx[:, 2])[0, 1] > 0.5

    def std(x: np.ndarray) -> np.ndarray:
        return (x - x.mean(axis=0)) / x.std(axis=0)

    both, own = np.hstack([std(bx), std(tx)]), std(bx)
    auc_both = auc(predict_scores(both, train_plain(both, y, LrSpec(len(y), 6, 0))), y)
    auc_own = auc(predict_scores(own, train_plain(own, y, LrSpec(len(y), 3, 0))), y)
    assert auc_both > auc_own + 0.03 and auc_both > 0.78


def test_canaries_only_in_telecom_only_rows() -> None:
    d = generate_marketing_data(1000, seed=5, canaries=True)
    plain = generate_marketing_data(1000, seed=5)
    assert d.bank == plain.bank and d.overlap == plain.overlap
    overlap = set(d.overlap)
    hits = [r for r, v in enumerate(d.telecom["monthly_spend"]) if v == float(CANARY_VALUES["monthly_spend"])]
    assert len(hits) == 5 and not {d.telecom["phone"][r] for r in hits} & overlap
    for r in hits:
        assert d.telecom["data_gb"][r] == float(CANARY_VALUES["data_gb"])
        assert d.telecom["tenure_months"][r] == int(CANARY_VALUES["tenure_months"])
