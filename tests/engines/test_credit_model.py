"""Tests of the enterprise-credit data generator and the in-enclave ``credit_score`` function.

Data is written by ``write_credit_data`` and read back through the real connectors (CSV for the bank
and the tax bureau, JSONL flattened for the power company), so the column names and types the
function sees are the ones an enclave would receive.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from confide.engines.tee.functions import _credit_auc, credit_score, lookup, task_code
from confide.engines.tee.wire import arrow_ipc
from confide.ledger.genesis import credit_code_valid
from confide.node.connectors import open_connector
from confide.scenarios.credit_data import CANARY_COPIES, write_credit_data

PARTIES = ("tax", "power", "bank")
FEATURES = [
    "bank_loan_log",
    "bank_term_months",
    "bank_overdue_days_max_log",
    "tax_revenue_log_mean",
    "tax_revenue_growth",
    "tax_paid_ratio",
    "tax_overdue_days_max_log",
    "power_kwh_log_mean",
    "power_kwh_cv",
    "power_arrears_months",
]


def generate(root: Path, **kwargs: Any) -> dict[str, Path]:
    dirs = {p: root / p for p in PARTIES}
    for d in dirs.values():
        d.mkdir(parents=True)
    return write_credit_data(dirs, **kwargs)


def read(spec: Mapping[str, Any]) -> pa.Table:
    conn = open_connector(dict(spec))
    conn.describe()
    return pa.Table.from_batches(list(conn.batches()))


def load(paths: Mapping[str, Path]) -> dict[str, pa.Table]:
    """The enclave's inputs by alias, read the way the parties' nodes read them."""
    return {
        "loans": read({"type": "csv", "path": str(paths["bank"])}),
        "filings": read({"type": "csv", "path": str(paths["tax"])}),
        "consumption": read({"type": "jsonl", "path": str(paths["power"])}),
    }


def metrics(table: pa.Table) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(table.schema.metadata[b"confide.metrics"])
    return parsed


@pytest.fixture(scope="module")
def default_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate(tmp_path_factory.mktemp("credit"))


@pytest.fixture(scope="module")
def tables(default_paths: dict[str, Path]) -> dict[str, pa.Table]:
    return load(default_paths)


@pytest.fixture(scope="module")
def scored(tables: dict[str, pa.Table]) -> pa.Table:
    return credit_score(tables)


def test_datasets_have_the_documented_columns_and_types(tables: dict[str, pa.Table]) -> None:
    def columns(t: pa.Table) -> dict[str, str]:
        return {f.name: str(f.type) for f in t.schema}

    assert columns(tables["loans"]) == {
        "credit_code": "string",
        "loan_cny": "int64",
        "term_months": "int64",
        "overdue_days": "int64",
        "status": "string",
        "defaulted": "int64",
    }
    assert columns(tables["filings"]) == {
        "credit_code": "string",
        "taxpayer_name": "string",
        "year": "int64",
        "revenue_cny": "int64",
        "tax_paid_cny": "int64",
        "overdue_days": "int64",
    }
    assert columns(tables["consumption"]) == {
        "credit_code": "string",
        "month": "string",
        "meter.serial": "string",
        "meter.kwh": "int64",
        "meter.peak_kw": "double",
        "arrears_cny": "int64",
    }


def test_loans_split_into_labelled_history_and_unlabelled_applicants(tables: dict[str, pa.Table]) -> None:
    loans = tables["loans"]
    status = loans["status"].to_pylist()
    defaulted = loans["defaulted"].to_pylist()

    assert set(status) == {"history", "applicant"}
    assert 0.70 <= status.count("history") / len(status) <= 0.80
    assert all((d is None) == (s == "applicant") for s, d in zip(status, defaulted, strict=True))
    labels = [d for d in defaulted if d is not None]
    assert set(labels) == {0, 1} and 0.05 < sum(labels) / len(labels) < 0.25


def test_credit_codes_are_valid_and_coverage_is_partial(tables: dict[str, pa.Table]) -> None:
    codes = {alias: set(t["credit_code"].to_pylist()) for alias, t in tables.items()}
    bank = tables["loans"]["credit_code"].to_pylist()

    assert len(bank) == len(set(bank)) == 3000
    assert all(credit_code_valid(c) for c in set().union(*codes.values()))
    for other in ("filings", "consumption"):
        missing = len(codes["loans"] - codes[other]) / len(bank)
        assert 0.01 < missing < 0.08  # some bank enterprises are unknown at tax / power
        assert codes[other] - codes["loans"]  # and they hold enterprises the bank never lent to


def test_credit_score_is_registered_by_its_source() -> None:
    code = task_code("credit_score")

    assert code.startswith("def credit_score(")
    assert lookup(code) is credit_score


def test_output_holds_the_applicants_only(tables: dict[str, pa.Table], scored: pa.Table) -> None:
    loans = tables["loans"]
    applicants = loans.filter(pc.equal(loans["status"], "applicant"))["credit_code"].to_pylist()
    present = set(tables["filings"]["credit_code"].to_pylist()) & set(
        tables["consumption"]["credit_code"].to_pylist()
    )
    m = metrics(scored)

    assert scored.column_names == ["credit_code", "pd", "score", "band"]
    assert [str(t) for t in scored.schema.types] == ["string", "double", "int32", "string"]
    assert list(scored.schema.metadata) == [b"confide.metrics"]
    assert scored["credit_code"].to_pylist() == sorted(applicants)
    unscored = {
        c
        for c, p in zip(scored["credit_code"].to_pylist(), scored["pd"].to_pylist(), strict=True)
        if p is None
    }
    assert unscored == set(applicants) - present
    assert scored["score"].null_count == scored["band"].null_count == len(unscored) > 0
    assert set(m) == {
        "auc_holdout",
        "roc_holdout",
        "train_rows",
        "holdout_rows",
        "applicants",
        "applicants_unscored",
        "features",
    }
    assert m["applicants"] == len(applicants) and m["applicants_unscored"] == len(unscored)
    assert m["features"] == FEATURES
    history = len(loans) - len(applicants)
    assert 0.65 < m["train_rows"] / (m["train_rows"] + m["holdout_rows"]) < 0.75
    assert m["train_rows"] + m["holdout_rows"] <= history


def test_scores_bands_and_pd_agree(scored: pa.Table) -> None:
    rows = [r for r in scored.to_pylist() if r["pd"] is not None]
    bands = {"A": (0.0, 0.02), "B": (0.02, 0.05), "C": (0.05, 0.10), "D": (0.10, 0.20), "E": (0.20, 1.1)}

    assert all(0.0 <= r["pd"] <= 1.0 and 300 <= r["score"] <= 900 for r in rows)
    assert all(bands[r["band"]][0] <= r["pd"] < bands[r["band"]][1] for r in rows)
    by_pd = sorted(rows, key=lambda r: r["pd"])
    assert all(a["score"] >= b["score"] for a, b in pairwise(by_pd))  # higher = safer
    assert len({r["band"] for r in rows}) == 5


def test_model_learns_from_the_joined_data(tables: dict[str, pa.Table], scored: pa.Table) -> None:
    loans_only = {
        "loans": tables["loans"],
        "filings": tables["filings"].select(["credit_code"]),
        "consumption": tables["consumption"].select(["credit_code"]),
    }
    bank_auc = metrics(credit_score(loans_only))["auc_holdout"]
    joint_auc = metrics(scored)["auc_holdout"]

    assert joint_auc >= 0.75
    assert joint_auc > bank_auc + 0.1  # tax and power data carry real signal


def test_a_feature_whose_column_was_not_granted_is_left_out(tables: dict[str, pa.Table]) -> None:
    granted = dict(tables, filings=tables["filings"].drop_columns(["tax_paid_cny", "taxpayer_name"]))
    m = metrics(credit_score(granted))

    assert m["features"] == [f for f in FEATURES if f != "tax_paid_ratio"]
    assert m["auc_holdout"] >= 0.75


def test_same_seed_same_files_and_identical_arrow_output(
    tmp_path: Path, default_paths: dict[str, Path], scored: pa.Table
) -> None:
    again = generate(tmp_path / "again")
    other = generate(tmp_path / "other", seed=8, enterprises=200)

    assert all(again[p].read_bytes() == default_paths[p].read_bytes() for p in PARTIES)
    assert all(other[p].read_bytes() != default_paths[p].read_bytes() for p in PARTIES)
    assert arrow_ipc(credit_score(load(again))) == arrow_ipc(scored)


def test_training_without_both_outcomes_is_refused(tables: dict[str, pa.Table]) -> None:
    loans = tables["loans"]
    no_defaults = loans.filter(pc.invert(pc.fill_null(pc.equal(loans["defaulted"], 1), False)))

    with pytest.raises(ValueError, match="defaulted and repaid"):
        credit_score(dict(tables, loans=no_defaults))


def test_canaries_are_planted_only_when_asked(tmp_path: Path) -> None:
    canaries = {"tax": "CANARY-tax-6f1c2a", "power": "CANARY-power-93be07"}
    marked = generate(tmp_path / "marked", enterprises=200, seed=3, canaries=canaries)
    plain = generate(tmp_path / "plain", enterprises=200, seed=3)
    marked_t, plain_t = load(marked), load(plain)

    assert canaries["tax"].encode() in marked["tax"].read_bytes()
    assert canaries["power"].encode() in marked["power"].read_bytes()
    for party in PARTIES:
        text = plain[party].read_bytes()
        assert b"CANARY" not in text and all(c.encode() not in text for c in canaries.values())
    names = marked_t["filings"].group_by("taxpayer_name").aggregate([("credit_code", "count_distinct")])
    serials = marked_t["consumption"].group_by("meter.serial").aggregate([("credit_code", "count_distinct")])
    assert dict(zip(*names.to_pydict().values(), strict=True))[canaries["tax"]] == CANARY_COPIES
    assert dict(zip(*serials.to_pydict().values(), strict=True))[canaries["power"]] == CANARY_COPIES
    # nothing else moves: the same data apart from the planted names and serials
    assert marked_t["loans"].equals(plain_t["loans"])
    assert (
        marked_t["filings"]
        .drop_columns(["taxpayer_name"])
        .equals(plain_t["filings"].drop_columns(["taxpayer_name"]))
    )
    assert (
        marked_t["consumption"]
        .drop_columns(["meter.serial"])
        .equals(plain_t["consumption"].drop_columns(["meter.serial"]))
    )


def test_auc_is_mann_whitney_with_ties_counted_half() -> None:
    # positives 0.35, 0.8, 0.4 against negatives 0.1, 0.4, 0.4: 1 + 3 + (1 + 0.5 + 0.5) = 6 of 9 pairs
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4])
    labels = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    assert _credit_auc(scores, labels) == pytest.approx(6 / 9, abs=1e-15)
    assert _credit_auc(np.array([1.0, 1.0, 1.0]), np.array([0.0, 1.0, 0.0])) == 0.5
    assert _credit_auc(scores, np.zeros(6)) is None

    rng = random.Random(5)
    for _ in range(20):
        n = rng.randint(2, 40)
        s = [float(rng.randint(0, 6)) for _ in range(n)]  # few distinct values: many ties
        y = [float(rng.random() < 0.4) for _ in range(n)]
        pos = [a for a, b in zip(s, y, strict=True) if b]
        neg = [a for a, b in zip(s, y, strict=True) if not b]
        if not pos or not neg:
            continue
        brute = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg) / (
            len(pos) * len(neg)
        )
        assert _credit_auc(np.array(s), np.array(y)) == pytest.approx(brute, abs=1e-12)


def test_the_holdout_roc_curve_is_monotone_and_its_area_matches_the_auc(scored: pa.Table) -> None:
    m = metrics(scored)
    roc = m["roc_holdout"]
    assert roc[0] == [0.0, 0.0] and roc[-1] == [1.0, 1.0] and 10 <= len(roc) <= 23
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(roc))
    area = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(roc))
    assert abs(area - m["auc_holdout"]) < 0.03  # 20 quantile points approximate the exact AUC
