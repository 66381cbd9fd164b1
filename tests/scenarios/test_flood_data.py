"""The waterlogging scenario's data: deterministic, well-formed, seasonal, non-IID, learnable; its map."""

from __future__ import annotations

import hashlib
import math
import re
import xml.etree.ElementTree as ET
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from confide.scenarios.flood_data import (
    CITIES,
    DEFAULT_DAYS,
    FEATURES,
    HOLDOUT,
    LABEL,
    START,
    city,
    districts,
    generate_city,
    risk_hour,
    write_city,
)
from confide.scenarios.flood_map import risk_colour, risk_map_svg, write_risk_map

Floats = npt.NDArray[np.float64]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def year() -> dict[str, pa.Table]:
    """Every city at the default size and seed (about half a second for all four)."""
    return {c.key: generate_city(c) for c in CITIES}


def _col(table: pa.Table, name: str) -> npt.NDArray[np.float64]:
    return np.asarray(table.column(name).to_numpy(), dtype=np.float64)


def _months(table: pa.Table) -> npt.NDArray[np.int64]:
    """Calendar month (1-12) of every row, from ``hour`` and :data:`START`."""
    days = np.datetime64(START) + (table.column("hour").to_numpy() // 24).astype("timedelta64[D]")
    return np.asarray(days.astype("datetime64[M]").astype(np.int64) % 12 + 1)


def _auc(score: Floats, label: Floats) -> float:
    """Rank AUC (Mann-Whitney), ties at their average rank."""
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ranks = (first + (counts + 1) / 2.0)[inverse]
    pos = label.sum()
    neg = len(label) - pos
    return float((ranks[label == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def _logistic_fit(x: Floats, y: Floats, *, steps: int = 150, rate: float = 0.5) -> tuple[Floats, float]:
    """Plain full-batch gradient descent on the mean log loss."""
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        g = p - y
        w -= rate * (x.T @ g) / len(y)
        b -= rate * float(g.mean())
    return w, b


# --- determinism -----------------------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    a = write_city(tmp_path / "a", "haicheng", days=20, seed=5)
    b = write_city(tmp_path / "b", "haicheng", days=20, seed=5)
    other = generate_city("haicheng", days=20, seed=6)

    assert a.name == "haicheng.parquet"
    assert _sha(a) == _sha(b)
    assert pq.read_table(a).equals(generate_city("haicheng", days=20, seed=5))
    assert not other.equals(pq.read_table(a))
    assert not np.array_equal(_col(other, "rain_1h"), _col(pq.read_table(a), "rain_1h"))


def test_a_city_does_not_depend_on_the_others() -> None:
    alone = generate_city("hucheng", days=20)
    for c in CITIES:
        generate_city(c, days=7, seed=99)
    again = generate_city(city("hucheng-water"), days=20)

    assert alone.equals(again)


# --- schema ----------------------------------------------------------------------------------------


def test_schema(year: dict[str, pa.Table]) -> None:
    for c in CITIES:
        t = year[c.key]
        n_districts = c.grid[0] * c.grid[1]

        assert t.column_names == ["row_id", "district", "hour", *FEATURES, HOLDOUT, LABEL]
        assert t.schema.field("row_id").type == pa.string()
        assert t.schema.field("district").type == pa.string()
        assert t.schema.field("hour").type == pa.int64()
        assert all(t.schema.field(f).type == pa.float64() for f in FEATURES)
        assert t.schema.field(HOLDOUT).type == pa.int64()
        assert t.schema.field(LABEL).type == pa.int64()
        assert t.num_rows == n_districts * DEFAULT_DAYS * 24
        assert 50_000 <= t.num_rows <= 200_000
        assert all(t.column(n).null_count == 0 for n in t.column_names)
        assert all(np.isfinite(_col(t, f)).all() for f in FEATURES)
        assert len(set(t.column("row_id").to_pylist())) == t.num_rows
        assert set(np.unique(_col(t, LABEL))) == {0.0, 1.0}
        assert set(np.unique(_col(t, HOLDOUT))) == {0.0, 1.0}
        ids = t.column("district").to_pylist()
        assert all(re.fullmatch(rf"{c.key}-d\d\d", d) for d in set(ids))
        assert t.column("row_id")[0].as_py() == f"{ids[0]}-000000"


def test_holdout_is_whole_days_one_in_five_same_calendar(year: dict[str, pa.Table]) -> None:
    calendars = []
    for c in CITIES:
        t = year[c.key]
        day = t.column("hour").to_numpy() // 24
        holdout = _col(t, HOLDOUT)
        per_day_max = np.bincount(day, holdout) / np.bincount(day)
        assert set(np.unique(per_day_max)) == {0.0, 1.0}  # a day is all holdout or none
        assert np.isclose(per_day_max.mean(), 0.2, atol=0.01)
        calendars.append(per_day_max)
    assert all(np.array_equal(calendars[0], cal) for cal in calendars[1:])
    blocks = calendars[0][: DEFAULT_DAYS // 5 * 5].reshape(-1, 5).sum(axis=1)
    assert (blocks == 1).all()  # never two holdout days in a block of five: spread over the seasons


def test_districts_match_the_table(year: dict[str, pa.Table]) -> None:
    for c in CITIES:
        d, t = districts(c), year[c.key]
        first = t.filter(pc.equal(t.column("hour"), 0))

        assert d.column("district").to_pylist() == first.column("district").to_pylist()
        for name in ("elevation", "slope", "impervious", "drain_capacity", "past_incidents"):
            assert np.array_equal(_col(d, name), _col(first, name)), name
        cells = set(zip(d.column("x").to_pylist(), d.column("y").to_pylist(), strict=True))
        assert len(cells) == d.num_rows == c.grid[0] * c.grid[1]
        assert d.schema.field("x").type == pa.int64()


def test_lookup_and_org_ids() -> None:
    assert len(CITIES) == 4
    assert len({c.key for c in CITIES}) == len({c.org for c in CITIES}) == 4
    for c in CITIES:
        assert re.fullmatch(r"^[a-z0-9][a-z0-9_-]{0,62}$", c.org)
        assert city(c.key) is c
        assert city(c.org) is c
    with pytest.raises(ValueError, match="haicheng-water"):
        city("atlantis")
    with pytest.raises(ValueError, match="days"):
        generate_city("haicheng", days=0)


# --- realism ---------------------------------------------------------------------------------------


def test_rainy_season_is_wetter_than_winter(year: dict[str, pa.Table]) -> None:
    """The default year runs April to March: both the rainy season and a winter."""
    for c in CITIES:
        t = year[c.key]
        month, rain, label = _months(t), _col(t, "rain_1h"), _col(t, LABEL)
        wet, dry = np.isin(month, (6, 7, 8)), np.isin(month, (12, 1, 2))

        assert rain[wet].mean() > 3 * rain[dry].mean(), c.key
        assert label[wet].mean() > 5 * label[dry].mean(), c.key
        assert 800 < rain.mean() * 24 * 365 < 4000  # mm per year, as in southern China


def test_rain_persists_and_the_river_lags(year: dict[str, pa.Table]) -> None:
    t = year["jiangcheng"]
    rain = _col(t, "rain_1h").reshape(-1, DEFAULT_DAYS * 24).mean(axis=0)  # city mean per hour
    river = _col(t, "river_level").reshape(-1, DEFAULT_DAYS * 24)[0]

    def lagged(lag: int) -> float:
        return float(np.corrcoef(rain[: len(rain) - lag], river[lag:])[0, 1])

    wet = rain > 0.5
    assert wet[1:][wet[:-1]].mean() > 0.6 > 3 * wet.mean()  # storms last: not hourly noise
    assert lagged(36) > lagged(0) + 0.05  # the river answers a day or two later


def test_cities_are_non_iid(year: dict[str, pa.Table]) -> None:
    rates = {k: _col(t, LABEL).mean() for k, t in year.items()}
    slope = {k: _col(t, "slope").mean() for k, t in year.items()}
    overall = sum(_col(t, LABEL).sum() for t in year.values()) / sum(t.num_rows for t in year.values())

    assert 0.005 < overall < 0.05
    assert all(0.002 < r < 0.08 for r in rates.values())
    assert max(rates.values()) > 1.5 * min(rates.values())
    assert slope["shancheng"] > 3 * max(v for k, v in slope.items() if k != "shancheng")
    tide = {k: np.std(np.diff(_col(t, "river_level")[: 24 * 30])) for k, t in year.items()}
    assert tide["haicheng"] > 5 * tide["hucheng"]  # the sea breathes twice a day, the lake does not


@pytest.mark.parametrize("key", ["haicheng", "hucheng"])
def test_logistic_regression_learns_within_a_city(year: dict[str, pa.Table], key: str) -> None:
    t = year[key]
    x = np.column_stack([_col(t, f) for f in FEATURES])
    y, test = _col(t, LABEL), _col(t, HOLDOUT) == 1
    mean, std = x[~test].mean(axis=0), x[~test].std(axis=0)
    z = (x - mean) / np.where(std > 0, std, 1.0)

    w, b = _logistic_fit(z[~test], y[~test])
    auc = _auc(z[test] @ w + b, y[test])

    assert auc > 0.8
    assert np.corrcoef(y, _col(t, "rain_3h"))[0, 1] > 0.15
    heavy = _col(t, "rain_3h") > 30
    assert y[heavy].mean() > 5 * y.mean()


def test_risk_hour_has_the_most_holdout_positives(year: dict[str, pa.Table]) -> None:
    t = year["shancheng"]
    hour, label, test = t.column("hour").to_numpy(), _col(t, LABEL), _col(t, HOLDOUT) == 1

    h = risk_hour(t)

    per_hour = np.bincount(hour[test], label[test])
    assert test[hour == h].all()
    assert per_hour[h] == per_hour.max() > 0


# --- the map ---------------------------------------------------------------------------------------


def _luminance(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _risks(d: pa.Table) -> dict[str, float]:
    ids = d.column("district").to_pylist()
    return {k: i / (len(ids) - 1) for i, k in enumerate(ids)}


def test_map_draws_every_district_darker_with_risk(tmp_path: Path) -> None:
    c = city("jiangcheng")
    d = districts(c)
    risk = _risks(d)

    path = write_risk_map(tmp_path / "map.svg", c, d, risk, title="江城 <内涝> & risk", subtitle="hour 42")
    root = ET.fromstring(path.read_text(encoding="utf-8"))

    cells = [g for g in root.iter(f"{SVG}g") if g.get("class") == "district"]
    assert len(cells) == d.num_rows
    assert {g.get("data-district") for g in cells} == set(risk)
    rects = {str(g.get("data-district")): g.find(f"{SVG}rect") for g in cells}
    fills = sorted((risk[k], str(r.get("fill"))) for k, r in rects.items() if r is not None)
    assert len(fills) == len(cells)
    lum = [_luminance(f) for _, f in fills]
    assert all(a > b for a, b in pairwise(lum))
    texts = [e.text for e in root.iter(f"{SVG}text")]
    assert "江城 <内涝> & risk" in texts
    assert "100%" in texts and "0.0%" in texts
    assert "CJK" in str(root.get("font-family"))


def test_colour_scale_is_monotone() -> None:
    fine = [_luminance(risk_colour(r)) for r in np.linspace(0.0, 1.0, 201)]
    coarse = [_luminance(risk_colour(r)) for r in np.linspace(0.0, 1.0, 21)]

    assert all(a >= b for a, b in pairwise(fine))  # 8-bit channels: neighbours may round alike
    assert all(a > b for a, b in pairwise(coarse))
    assert risk_colour(0.0) == "#fff5f0" and risk_colour(1.0) == "#67000d"


@pytest.mark.parametrize("bad", [-0.01, 1.01, math.nan, math.inf])
def test_map_refuses_an_invalid_risk(bad: float) -> None:
    c = city("haicheng")
    d = districts(c)
    risk = _risks(d)
    risk["haicheng-d03"] = bad

    with pytest.raises(ValueError, match="haicheng-d03"):
        risk_map_svg(c, d, risk, title="t")


def test_map_refuses_a_missing_or_foreign_district() -> None:
    c = city("haicheng")
    d = districts(c)
    risk = _risks(d)

    with pytest.raises(ValueError, match="haicheng-d05"):
        risk_map_svg(c, d, {k: v for k, v in risk.items() if k != "haicheng-d05"}, title="t")
    with pytest.raises(ValueError, match="hucheng-d01"):
        risk_map_svg(c, d, {**risk, "hucheng-d01": 0.5}, title="t")
