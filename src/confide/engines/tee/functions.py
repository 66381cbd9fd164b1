"""Python functions an enclave may run instead of SQL (part of the enclave runtime, so measured).

A registered function takes the decrypted inputs, ``{alias: pyarrow.Table}``, and returns one
``pyarrow.Table``. A task names one by its *source*: the task code is ``inspect.getsource`` of the
function, byte for byte, so the function's text goes into MRENCLAVE twice, once with this module's
bytes in the runtime digest and once as the task code. The enclave runs a function only when the
task code equals a registered function's source exactly; any other task code is SQL. No SQL text is
the source of a Python ``def``, so the measured code alone decides what runs.

Add a function here, add it to :data:`FUNCTIONS`, and every measurement of this runtime changes.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

__all__ = ["FUNCTIONS", "TaskFunction", "lookup", "task_code"]

TaskFunction = Callable[[Mapping[str, pa.Table]], pa.Table]


def row_count(tables: Mapping[str, pa.Table]) -> pa.Table:
    """One row per input, by alias: how many rows the enclave received."""
    aliases = sorted(tables)
    return pa.table({"alias": aliases, "rows": pa.array([tables[a].num_rows for a in aliases], pa.int64())})


_Floats = NDArray[np.float64]
_Codes = NDArray[np.str_]
_CREDIT_TRAIN_PERCENT = 70  # of the labelled history, by a hash of the credit code; the rest is holdout
_CREDIT_L2 = 1.0  # ridge penalty on the standardized weights (not the intercept)
_CREDIT_BANDS = (0.02, 0.05, 0.10, 0.20)  # pd below each -> A, B, C, D; the rest E
_CREDIT_BAND_NAMES = np.array(["A", "B", "C", "D", "E"])
_CREDIT_PD_DECIMALS = 6  # pd is rounded so that ULP-level BLAS/SIMD differences cannot show
_CREDIT_OUT = pa.schema(
    [("credit_code", pa.string()), ("pd", pa.float64()), ("score", pa.int32()), ("band", pa.string())]
)


def credit_score(tables: Mapping[str, pa.Table]) -> pa.Table:
    """Enterprise credit scoring: bank loans + tax filings + power consumption -> applicants' pd.

    Inputs by alias: ``loans`` (credit_code, status history|applicant, defaulted 0/1 for history,
    loan_cny, term_months, overdue_days), ``filings`` (credit_code, year, revenue_cny, tax_paid_cny,
    overdue_days) and ``consumption`` (credit_code, meter.kwh, arrears_cny). A feature whose source
    columns are not in an input is left out (``metrics.features`` lists those used); rows with a null
    in a used column are ignored. Per enterprise: tax revenue (log of the mean), revenue growth (slope
    of log revenue per year), longest tax delay, tax paid / revenue; power kwh (log of the mean), its
    coefficient of variation, months in arrears; bank loan amount (log), term, longest past delay.

    History with a match at tax and power is split ~70/30 by SHA-256 of the credit code; an
    L2-regularised logistic regression is fitted by Newton's method on train-standardized features,
    and its AUC measured on the holdout. Output: one row per applicant credit code, sorted:
    ``pd`` (probability of default, rounded to 6 places), ``score`` (300-900, higher = safer; 600 at
    odds 50:1, 50 points to double the odds), ``band`` (A: pd < 2 %, B < 5 %, C < 10 %, D < 20 %, E);
    all three null for an applicant missing at tax or power or without a complete loan row
    (``applicants_unscored``); history rows without a match are not used. Schema metadata
    ``confide.metrics``: holdout AUC and ROC curve (20 points), row counts, feature names; never inputs
    or coefficients.
    """
    bank_hist, bank_appl = _credit_loans(tables["loans"])
    tax, power = _credit_tax(tables["filings"]), _credit_power(tables["consumption"])

    hist_codes = np.unique(_credit_codes(bank_hist))
    hist_x, hist_ok = _credit_join(hist_codes, (_credit_bank(bank_hist), tax, power))
    labels = _credit_labels(bank_hist, hist_codes)
    hist_codes, hist_x, labels = hist_codes[hist_ok], hist_x[hist_ok], labels[hist_ok]
    train = np.array([_credit_in_train(c) for c in hist_codes.tolist()], dtype=np.bool_)
    if len(np.unique(labels[train])) < 2:
        raise ValueError("the training history needs defaulted and repaid loans")
    mean = hist_x[train].mean(axis=0)
    std = hist_x[train].std(axis=0)
    std[std == 0] = 1.0
    weights = _credit_fit(_credit_design(hist_x[train], mean, std), labels[train])
    holdout_pd = _credit_sigmoid(_credit_design(hist_x[~train], mean, std) @ weights)
    auc = _credit_auc(holdout_pd, labels[~train])
    roc = _credit_roc(holdout_pd, labels[~train])

    bank = _credit_bank(bank_appl)
    codes = np.unique(_credit_codes(bank_appl))
    appl_x, scored = _credit_join(codes, (bank, tax, power))
    pd_ = np.round(_credit_sigmoid(_credit_design(appl_x[scored], mean, std) @ weights), _CREDIT_PD_DECIMALS)
    odds = np.log1p(-np.clip(pd_, 1e-6, 1 - 1e-6)) - np.log(np.clip(pd_, 1e-6, 1 - 1e-6))
    score = np.clip(np.rint(600 + 50 / math.log(2) * (odds - math.log(50))), 300, 900).astype(np.int32)
    band = _CREDIT_BAND_NAMES[np.searchsorted(np.array(_CREDIT_BANDS), pd_, side="right")]
    full_pd, full_score = np.zeros(len(codes)), np.zeros(len(codes), dtype=np.int32)
    full_pd[scored], full_score[scored] = pd_, score
    full_band = np.full(len(codes), "", dtype=object)
    full_band[scored] = band
    metrics = {
        "auc_holdout": None if auc is None else round(auc, 4),
        "roc_holdout": roc,
        "train_rows": int(train.sum()),
        "holdout_rows": int((~train).sum()),
        "applicants": len(codes),
        "applicants_unscored": int((~scored).sum()),
        "features": bank[2] + tax[2] + power[2],
    }
    columns = [
        pa.array(codes.tolist(), pa.string()),
        pa.array(full_pd, pa.float64(), mask=~scored),
        pa.array(full_score, pa.int32(), mask=~scored),
        pa.array(full_band, pa.string(), mask=~scored),
    ]
    meta = {b"confide.metrics": json.dumps(metrics, separators=(",", ":")).encode()}
    return pa.Table.from_arrays(columns, schema=_CREDIT_OUT.with_metadata(meta))


_Block = tuple[_Codes, _Floats, list[str]]  # sorted credit codes, one feature row each, feature names


def _credit_codes(table: pa.Table) -> _Codes:
    codes = pc.cast(table["credit_code"], pa.string()).to_numpy(zero_copy_only=False)
    return np.asarray(codes.astype(np.str_) if len(codes) else np.array([], dtype="<U18"))


def _credit_num(table: pa.Table, column: str) -> _Floats:
    return np.asarray(pc.cast(table[column], pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _credit_rows(table: pa.Table, wanted: tuple[str, ...]) -> pa.Table:
    """``credit_code`` and those of ``wanted`` the table has, rows with a null in any dropped."""
    return table.select(["credit_code", *(c for c in wanted if c in table.column_names)]).drop_null()


def _credit_groups(table: pa.Table) -> tuple[_Codes, NDArray[np.intp], _Floats]:
    keys, inverse = np.unique(_credit_codes(table), return_inverse=True)
    return keys, inverse, np.bincount(inverse, minlength=len(keys)).astype(np.float64)


def _credit_sum(inverse: NDArray[np.intp], values: _Floats, groups: int) -> _Floats:
    return np.asarray(np.bincount(inverse, weights=values, minlength=groups), dtype=np.float64)


def _credit_max(inverse: NDArray[np.intp], values: _Floats, groups: int) -> _Floats:
    out = np.full(groups, -np.inf)
    np.maximum.at(out, inverse, values)
    return out


def _credit_block(keys: _Codes, features: list[tuple[str, _Floats]]) -> _Block:
    matrix = np.column_stack([v for _, v in features]) if features else np.zeros((len(keys), 0))
    return keys, np.asarray(matrix, dtype=np.float64), [n for n, _ in features]


def _credit_loans(loans: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(labelled history rows, applicant rows); rows of any other status are ignored."""
    status = pc.cast(loans["status"], pa.string())
    hist = loans.filter(pc.fill_null(pc.equal(status, "history"), False))
    hist = hist.filter(pc.and_(pc.is_valid(hist["defaulted"]), pc.is_valid(hist["credit_code"])))
    appl = loans.filter(pc.fill_null(pc.equal(status, "applicant"), False))
    return hist, appl.filter(pc.is_valid(appl["credit_code"]))


def _credit_labels(hist: pa.Table, codes: _Codes) -> _Floats:
    """1.0 where any history row of the code defaulted, per code of ``codes`` (all in ``hist``)."""
    keys, inverse, _ = _credit_groups(hist)
    defaulted = _credit_max(inverse, (_credit_num(hist, "defaulted") > 0).astype(np.float64), len(keys))
    return np.asarray(defaulted[np.searchsorted(keys, codes)], dtype=np.float64)


def _credit_bank(loans: pa.Table) -> _Block:
    rows = _credit_rows(loans, ("loan_cny", "term_months", "overdue_days"))
    keys, inverse, n = _credit_groups(rows)
    features: list[tuple[str, _Floats]] = []
    if "loan_cny" in rows.column_names:
        loan = np.maximum(_credit_num(rows, "loan_cny"), 0.0)
        features.append(("bank_loan_log", np.log1p(_credit_sum(inverse, loan, len(keys)) / n)))
    if "term_months" in rows.column_names:
        features.append(
            ("bank_term_months", _credit_sum(inverse, _credit_num(rows, "term_months"), len(keys)) / n)
        )
    if "overdue_days" in rows.column_names:
        late = _credit_max(inverse, np.maximum(_credit_num(rows, "overdue_days"), 0.0), len(keys))
        features.append(("bank_overdue_days_max_log", np.log1p(late)))
    return _credit_block(keys, features)


def _credit_tax(filings: pa.Table) -> _Block:
    rows = _credit_rows(filings, ("year", "revenue_cny", "tax_paid_cny", "overdue_days"))
    keys, inverse, n = _credit_groups(rows)
    names, features = rows.column_names, []
    if "revenue_cny" in names:
        revenue = np.maximum(_credit_num(rows, "revenue_cny"), 0.0)
        total = _credit_sum(inverse, revenue, len(keys))
        features.append(("tax_revenue_log_mean", np.log1p(total / n)))
        if "year" in names:
            slope = _credit_slope(inverse, _credit_num(rows, "year"), np.log1p(revenue), n)
            features.append(("tax_revenue_growth", slope))
        if "tax_paid_cny" in names:
            paid = _credit_sum(inverse, np.maximum(_credit_num(rows, "tax_paid_cny"), 0.0), len(keys))
            features.append(
                ("tax_paid_ratio", np.divide(paid, total, out=np.zeros(len(keys)), where=total > 0))
            )
    if "overdue_days" in names:
        late = _credit_max(inverse, np.maximum(_credit_num(rows, "overdue_days"), 0.0), len(keys))
        features.append(("tax_overdue_days_max_log", np.log1p(late)))
    return _credit_block(keys, features)


def _credit_power(consumption: pa.Table) -> _Block:
    rows = _credit_rows(consumption, ("meter.kwh", "arrears_cny"))
    keys, inverse, n = _credit_groups(rows)
    features: list[tuple[str, _Floats]] = []
    if "meter.kwh" in rows.column_names:
        kwh = np.maximum(_credit_num(rows, "meter.kwh"), 0.0)
        mean = _credit_sum(inverse, kwh, len(keys)) / n
        std = np.sqrt(_credit_sum(inverse, (kwh - mean[inverse]) ** 2, len(keys)) / n)
        features.append(("power_kwh_log_mean", np.log1p(mean)))
        features.append(("power_kwh_cv", np.divide(std, mean, out=np.zeros(len(keys)), where=mean > 0)))
    if "arrears_cny" in rows.column_names:
        arrears = (_credit_num(rows, "arrears_cny") > 0).astype(np.float64)
        features.append(("power_arrears_months", _credit_sum(inverse, arrears, len(keys))))
    return _credit_block(keys, features)


def _credit_slope(inverse: NDArray[np.intp], x: _Floats, y: _Floats, n: _Floats) -> _Floats:
    """Least-squares slope of ``y`` on ``x`` per group; 0 where ``x`` does not vary."""
    groups = len(n)
    dx = x - (_credit_sum(inverse, x, groups) / n)[inverse]
    dy = y - (_credit_sum(inverse, y, groups) / n)[inverse]
    sxx, sxy = _credit_sum(inverse, dx * dx, groups), _credit_sum(inverse, dx * dy, groups)
    return np.divide(sxy, sxx, out=np.zeros(groups), where=sxx > 1e-12)


def _credit_join(codes: _Codes, blocks: tuple[_Block, ...]) -> tuple[_Floats, NDArray[np.bool_]]:
    """Each code's features from every block side by side, and whether every block knows the code
    (with finite values); unknown codes get zeros, to be left out by the caller."""
    found, parts = np.ones(len(codes), dtype=np.bool_), []
    for keys, matrix, _ in blocks:
        if len(keys) == 0:
            found[:] = False
            parts.append(np.zeros((len(codes), matrix.shape[1])))
            continue
        at = np.minimum(np.searchsorted(keys, codes), len(keys) - 1)
        hit = keys[at] == codes
        parts.append(np.where(hit[:, None], matrix[at], 0.0))
        found &= hit
    x = np.asarray(np.hstack([np.zeros((len(codes), 0)), *parts]), dtype=np.float64)
    found &= np.isfinite(x).all(axis=1)
    return np.where(found[:, None], x, 0.0), found


def _credit_in_train(code: str) -> bool:
    return int.from_bytes(hashlib.sha256(code.encode()).digest()[:8], "big") % 100 < _CREDIT_TRAIN_PERCENT


def _credit_design(x: _Floats, mean: _Floats, std: _Floats) -> _Floats:
    """Standardized features with a leading intercept column."""
    return np.hstack([np.ones((len(x), 1)), (x - mean) / std])


def _credit_sigmoid(z: _Floats) -> _Floats:
    return np.asarray(np.exp(-np.logaddexp(0.0, -z)), dtype=np.float64)


def _credit_fit(x: _Floats, y: _Floats) -> _Floats:
    """L2-regularised logistic regression, Newton's method (IRLS); the intercept (column 0) unpenalised."""
    penalty = np.full(x.shape[1], _CREDIT_L2)
    penalty[0] = 1e-9
    w = np.zeros(x.shape[1])
    for _ in range(100):
        p = _credit_sigmoid(x @ w)
        gradient = x.T @ (p - y) + penalty * w
        hessian = (x * (p * (1.0 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        w = w - step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return w


def _credit_auc(scores: _Floats, labels: _Floats) -> float | None:
    """Area under the ROC curve (Mann-Whitney U, ties count half); None without both classes."""
    positive = labels > 0
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(ordered)]
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)  # 1-based, ties averaged
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _credit_roc(scores: _Floats, labels: _Floats, points: int = 20) -> list[list[float]]:
    """The holdout ROC curve at ``points`` score quantiles: [false positive rate, true positive rate]
    pairs rounded to 3 places (an aggregate of the holdout, like its AUC)."""
    positive = labels > 0
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return []
    cuts = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, points + 1)))[::-1]
    out = [[0.0, 0.0]]
    for cut in cuts:
        flagged = scores >= cut
        out.append(
            [
                round(float((flagged & ~positive).sum()) / n_neg, 3),
                round(float((flagged & positive).sum()) / n_pos, 3),
            ]
        )
    if out[-1] != [1.0, 1.0]:
        out.append([1.0, 1.0])
    return out


FUNCTIONS: dict[str, TaskFunction] = {"row_count": row_count, "credit_score": credit_score}


def task_code(name: str) -> str:
    """The task code (measured source) of the registered function ``name``."""
    if name not in FUNCTIONS:
        raise KeyError(f"unknown enclave function {name!r}; registered: {', '.join(sorted(FUNCTIONS))}")
    return inspect.getsource(FUNCTIONS[name])


def lookup(code: str) -> TaskFunction | None:
    """The registered function whose source is exactly ``code``, or ``None`` (then ``code`` is SQL)."""
    for fn in FUNCTIONS.values():
        if inspect.getsource(fn) == code:
            return fn
    return None
