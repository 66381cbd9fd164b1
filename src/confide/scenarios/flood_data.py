"""Deterministic synthetic data for the urban-waterlogging (内涝) scenario: one table per city.

A provincial data bureau has four cities' water authorities train, by federated learning, a model of
the waterlogging risk per district for the coming hours. Each authority holds one table, one row per
district and hour: ``row_id, district, hour``, then :data:`FEATURES` (float64), then :data:`HOLDOUT`
and :data:`LABEL` (int64 0/1). ``hour`` counts hours since :data:`START` (2025-04-01 00:00, China
Standard Time), so day ``hour // 24`` is a local calendar day and the default year covers a whole
rainy season and a winter.

The cities (:data:`CITIES`) are non-IID on purpose: coastal Haicheng (typhoons, tides, low ground),
hilly Shancheng (intense convective storms, steep flashy runoff into valley districts, good drainage
up the hills), lakeside Hucheng (long plum rains, a lake that rises all summer and backs up the
outfalls) and riverside Jiangcheng (a lagging river and old low districts with half the drainage).

How a table is made (all hourly, numpy-vectorized over districts):

* Rain is a sum of storm events drawn per day from monthly rates: frontal rain (long, moderate,
  wettest in the plum-rain weeks), convective storms (1-4 h, intense, afternoons of the warm months,
  a local blob on the district grid) and typhoons (12-36 h, heavy, July-September). Storms give
  persistence; winter is nearly dry. 1,300-2,600 mm a year at the default seed, rounded to 0.1 mm.
* ``river_level`` (m above the normal level of the city's sea, lake or river, the datum of
  ``elevation``) = seasonal rise + the city-mean rain through a gamma unit hydrograph peaking
  ``water_lag`` hours later + tide (coast only).
* ``elevation`` is the height above that normal water level (HAND, metres), ``slope`` in percent,
  ``impervious`` a share, ``drain_capacity`` the rain intensity (mm/h) the sewers carry.
  ``past_incidents`` is a 2015-2024 incident count drawn from each district's static vulnerability.
* A bucket per district, stepped hour by hour: runoff (rain x runoff coefficient, concentrated into
  low districts, faster on steep slopes) fills the sewers, which pass 30 % of their design capacity
  (the weakest inlets decide), less under a daily random blockage and far less under backflow when
  the water level nears the ground. What they cannot hold ponds on the streets and drains back
  slowly. ``drain_fill`` is the sensed fill (0-1, with sensor noise).
* ``forecast_3h`` is the weather bureau's nowcast of the next three hours' rain (log-normal error,
  partly shared over a day).
* :data:`LABEL` is 1 when the deepest ponding of the next three hours, times a log-normal factor for
  what is unobserved, passes the district's threshold (lower on low ground); plus ~1 false report in
  3000 hours. So the label is a threshold of a smooth function of the features plus noise; the
  function differs by city (tide- and lake-driven backflow, valley concentration, old sewers).

At the default size and seed (1 year, 12-20 districts, 105k-175k rows per city, about 0.5 s for all
four) the positive rates are 1.0-2.0 %, and a logistic regression on the standardized features reaches
a holdout AUC of about 0.98 within a city; it is that high partly because most hours are dry.

Validation: :data:`HOLDOUT` marks whole days, one seeded day in every five (20 %), the same calendar
for every city, so hour-to-hour autocorrelation does not leak labels across the split.
:func:`risk_hour` picks a holdout hour worth drawing with :mod:`confide.scenarios.flood_map`.

Deterministic: every random stream is a :class:`numpy.random.Generator` seeded by SHA-256 of the seed,
the city key and the stream's purpose, so a city's table never depends on what else was generated.
The static district values depend on the seed only; the weather also depends on ``days`` (a shorter
run is not a prefix of a longer one).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "CITIES",
    "DEFAULT_DAYS",
    "FEATURES",
    "HOLDOUT",
    "LABEL",
    "START",
    "City",
    "city",
    "districts",
    "generate_city",
    "risk_hour",
    "write_city",
]

Floats = npt.NDArray[np.float64]
START = dt.date(2025, 4, 1)  # hour 0 is 00:00 China Standard Time on this day
DEFAULT_DAYS = 365
HOLDOUT = "holdout"
LABEL = "waterlogged_next3h"
FEATURES = (
    "rain_1h", "rain_3h", "rain_24h", "rain_72h", "forecast_3h", "river_level", "drain_fill",
    "elevation", "slope", "impervious", "drain_capacity", "past_incidents", "season_sin", "season_cos",
)  # fmt: skip
_HOLDOUT_EVERY = 5  # one holdout day per block of five
_WARMUP_DAYS = 12  # simulated before START so rain sums, river and sewers start in a natural state
_HORIZON = 3  # the label looks this many hours ahead
_EFFECTIVE = 0.3  # share of the design capacity the weakest inlets of a district really pass (silt, debris)
_STORAGE_H = 0.2  # the pipes hold this many hours of their capacity before the streets flood
_INLET = 0.5  # share of the free pipe room street water finds back into in an hour
_POND_MM = 2.0  # ponding (mm over the district) reported as waterlogging on mid-height ground
_NOISE = 0.5  # log-normal spread of what is seen and reported, given the simulated ponding
# relative event rates by month, Jan..Dec (southern China: plum rain in June, typhoons in Jul-Sep)
_FRONTAL = (0.35, 0.45, 0.6, 0.75, 0.9, 1.0, 0.75, 0.4, 0.45, 0.35, 0.3, 0.3)
_PLUM = (0.0, 0.0, 0.0, 0.0, 0.25, 1.0, 0.45, 0.0, 0.0, 0.0, 0.0, 0.0)
_CONVECTIVE = (0.0, 0.03, 0.12, 0.35, 0.65, 0.85, 1.0, 1.0, 0.7, 0.25, 0.04, 0.0)
_TYPHOON = (0.0, 0.0, 0.0, 0.0, 0.0, 0.15, 0.7, 1.0, 0.7, 0.2, 0.02, 0.0)


@dataclass(frozen=True)
class City:
    """One city's water authority and the climate, terrain and drainage its data are drawn from."""

    key: str
    org: str  # ledger org id
    name_zh: str
    name_en: str
    grid: tuple[int, int]  # district grid, columns x rows
    frontal: float  # frontal rain events per day at the spring peak
    plum: float  # extra frontal events per day at the plum-rain peak
    convective: float  # convective storms per day at the summer peak
    storm_mm: float  # median peak intensity of a convective storm, mm/h
    typhoon: float  # typhoons per day in August
    water_season: float  # summer rise of the sea / lake / river above winter, m
    water_gain: float  # m of rise per mm/h of unit-hydrograph-routed city rain
    water_lag: float  # hours from rain to the water level's response peak
    tide: float  # semidiurnal tidal amplitude, m
    hand: tuple[float, float]  # range of district heights above the normal water level, m
    downhill: tuple[float, float]  # direction in which the ground falls towards the water (grid units)
    roughness: float  # 0 = a plain tilted towards the water, 1 = random hills
    slope: tuple[float, float]  # range of slopes, %
    impervious: float  # mean impervious share
    capacity: float  # median drainage capacity, mm/h
    uphill_drainage: float  # log-capacity gain from the lowest to the highest district
    old_share: float  # share of old districts (near the water) with half the capacity
    concentration: float  # extra runoff that flows into the lowest district (0 = none)


CITIES: tuple[City, ...] = (
    City("haicheng", "haicheng-water", "海城", "Haicheng", (4, 4), frontal=0.16, plum=0.05, convective=0.2,
         storm_mm=30.0, typhoon=0.035, water_season=0.3, water_gain=0.25, water_lag=6.0, tide=1.1,
         hand=(1.6, 9.0), downhill=(-1.0, 0.2), roughness=0.25, slope=(0.2, 2.0), impervious=0.72,
         capacity=28.0, uphill_drainage=0.2, old_share=0.15, concentration=0.3),
    City("shancheng", "shancheng-water", "山城", "Shancheng", (3, 4), frontal=0.14, plum=0.05,
         convective=0.22, storm_mm=34.0, typhoon=0.008, water_season=1.5, water_gain=0.6, water_lag=10.0,
         tide=0.0, hand=(3.0, 110.0), downhill=(0.0, 1.0), roughness=0.7, slope=(3.0, 25.0),
         impervious=0.55, capacity=40.0, uphill_drainage=0.9, old_share=0.1, concentration=1.6),
    City("hucheng", "hucheng-water", "湖城", "Hucheng", (5, 4), frontal=0.18, plum=0.22, convective=0.12,
         storm_mm=26.0, typhoon=0.01, water_season=2.2, water_gain=2.5, water_lag=90.0, tide=0.0,
         hand=(1.8, 9.0), downhill=(-1.0, -1.0), roughness=0.3, slope=(0.1, 1.5), impervious=0.62,
         capacity=24.0, uphill_drainage=0.1, old_share=0.2, concentration=0.2),
    City("jiangcheng", "jiangcheng-water", "江城", "Jiangcheng", (5, 3), frontal=0.15, plum=0.1,
         convective=0.14, storm_mm=28.0, typhoon=0.006, water_season=3.0, water_gain=0.8, water_lag=36.0,
         tide=0.0, hand=(2.5, 22.0), downhill=(0.0, -1.0), roughness=0.3, slope=(0.5, 6.0),
         impervious=0.66, capacity=30.0, uphill_drainage=0.3, old_share=0.45, concentration=0.5),
)  # fmt: skip


def city(key_or_org: str) -> City:
    """The city whose ``key`` or ``org`` is ``key_or_org``; ``ValueError`` lists the valid names."""
    for c in CITIES:
        if key_or_org in (c.key, c.org):
            return c
    valid = ", ".join(n for c in CITIES for n in (c.key, c.org))
    raise ValueError(f"unknown city {key_or_org!r}; valid: {valid}")


def _resolve(c: City | str) -> City:
    return c if isinstance(c, City) else city(c)


def _rng(seed: int, *purpose: str) -> np.random.Generator:
    digest = hashlib.sha256("/".join(("confide-flood", str(seed), *purpose)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


@dataclass(frozen=True)
class _Static:
    ids: list[str]
    x: Floats
    y: Floats
    hand: Floats  # "elevation"
    rel: Floats  # rank of the height in the city, 0 (lowest) .. 1
    slope: Floats
    impervious: Floats
    capacity: Floats
    concentration: Floats  # runoff multiplier (>= 1 in low districts)
    incidents: Floats


def _static(c: City, seed: int) -> _Static:
    rng = _rng(seed, c.key, "districts")
    cols, rows = c.grid
    n = cols * rows
    x, y = (np.arange(n) % cols).astype(np.float64), (np.arange(n) // cols).astype(np.float64)
    tilt = -(c.downhill[0] * x + c.downhill[1] * y)
    tilt = (tilt - tilt.min()) / max(float(np.ptp(tilt)), 1e-9)
    h = (1.0 - c.roughness) * tilt + c.roughness * rng.random(n)
    rel = np.argsort(np.argsort(h)) / (n - 1.0)
    hand = c.hand[0] + (c.hand[1] - c.hand[0]) * rel**1.4 * rng.uniform(0.85, 1.0, n)
    slope = c.slope[0] + (c.slope[1] - c.slope[0]) * np.clip(0.5 * rng.random(n) + 0.6 * rel, 0.0, 1.0)
    imp = np.clip(c.impervious + 0.12 * rng.standard_normal(n) + 0.08 * (0.5 - rel), 0.25, 0.95)
    old = rng.random(n) < c.old_share * 2.0 * (1.0 - rel)  # old quarters grew up by the water
    cap = c.capacity * np.exp(c.uphill_drainage * (rel - 0.5) + 0.15 * rng.standard_normal(n))
    cap = np.where(old, 0.5 * cap, cap)
    conc = 1.0 + c.concentration * (1.0 - rel) ** 2
    vuln = np.log(c.capacity / cap) + 1.2 * (1.0 - rel) + 1.5 * (imp - 0.6) + 0.5 * (conc - 1.0)
    incidents = rng.poisson(np.exp(0.6 + 1.3 * vuln)).astype(np.float64)
    ids = [f"{c.key}-d{i + 1:02d}" for i in range(n)]
    r1, r2 = np.round(hand, 1), np.round(slope, 1)
    return _Static(ids, x, y, r1, rel, r2, np.round(imp, 3), np.round(cap, 1), conc, incidents)


def districts(city: City | str, *, seed: int = 2026) -> pa.Table:
    """One row per district: ``district, name, x, y`` (grid cell) and the static values of the table."""
    c = _resolve(city)
    s = _static(c, seed)
    return pa.table(
        {
            "district": pa.array(s.ids, pa.string()),
            "name": pa.array([f"{c.name_zh}{i + 1:02d}区" for i in range(len(s.ids))], pa.string()),
            "x": pa.array(s.x.astype(np.int64)),
            "y": pa.array(s.y.astype(np.int64)),
            "elevation": pa.array(s.hand),
            "slope": pa.array(s.slope),
            "impervious": pa.array(s.impervious),
            "drain_capacity": pa.array(s.capacity),
            "past_incidents": pa.array(s.incidents),
        }
    )


def _months(n_days: int) -> npt.NDArray[np.int64]:
    first = np.datetime64(START) - np.timedelta64(_WARMUP_DAYS, "D")
    days = first + np.arange(n_days).astype("timedelta64[D]")
    return (days.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int64)


def _add_storms(rain: Floats, rng: np.random.Generator, rate: Floats, kind: str, c: City, s: _Static) -> None:
    """Add one kind of storm, drawn per day at ``rate``, to ``rain`` (hours x districts) in place."""
    starts = np.repeat(np.arange(len(rate)), rng.poisson(rate)) * 24
    for t0 in starts:
        if kind == "convective":
            t0, dur, peak, power = t0 + rng.integers(11, 21), int(rng.integers(1, 5)), c.storm_mm, 2.0
            cx, cy, r = (
                rng.uniform(-0.5, c.grid[0] - 0.5),
                rng.uniform(-0.5, c.grid[1] - 0.5),
                rng.uniform(0.8, 2.2),
            )
            spread = 0.1 + np.exp(-((s.x - cx) ** 2 + (s.y - cy) ** 2) / (2 * r * r))
        elif kind == "typhoon":
            t0, dur, peak, power = t0 + rng.integers(0, 24), int(rng.integers(12, 37)), 12.0, 1.0
            spread = rng.lognormal(0.0, 0.2, len(s.x))
        else:
            t0, dur, peak, power = t0 + rng.integers(0, 24), int(rng.integers(3, 25)), 2.5, 1.0
            spread = rng.lognormal(0.0, 0.15, len(s.x))
        dur = min(dur, len(rain) - int(t0))
        shape = np.sin(np.pi * (np.arange(dur) + 0.5) / max(dur, 1)) ** power
        hourly = peak * rng.lognormal(0.0, 0.5) * shape * rng.lognormal(0.0, 0.35, dur)
        rain[t0 : t0 + dur] += hourly[:, None] * spread[None, :]


def _rain(c: City, s: _Static, rng: np.random.Generator, n_days: int) -> Floats:
    m = _months(n_days)
    rain = np.zeros((n_days * 24, len(s.ids)))
    rates = {
        "frontal": c.frontal * np.take(_FRONTAL, m) + c.plum * np.take(_PLUM, m),
        "convective": c.convective * np.take(_CONVECTIVE, m),
        "typhoon": c.typhoon * np.take(_TYPHOON, m),
    }
    for kind, rate in rates.items():
        _add_storms(rain, rng, rate, kind, c, s)
    return np.round(rain, 1)


def _water_level(c: City, rain: Floats, rng: np.random.Generator) -> Floats:
    n = len(rain)
    hours = np.arange(n, dtype=np.float64) - _WARMUP_DAYS * 24
    doy = hours / 24.0 + (START.timetuple().tm_yday - 1)
    season = 0.5 * (1.0 + np.cos(2 * np.pi * (doy - 200.0) / 365.25))  # highest in mid-July
    lag = np.arange(int(8 * c.water_lag), dtype=np.float64)
    kernel = lag**2 * np.exp(-lag / (c.water_lag / 2.0))
    routed = np.convolve(rain.mean(axis=1), kernel / kernel.sum())[:n]
    tide = c.tide * np.cos(2 * np.pi * hours / 12.42 + rng.uniform(0, 2 * np.pi))
    drift = np.cumsum(rng.normal(0.0, 0.01, n)) * 0.2
    level: Floats = c.water_season * (season - 0.5) + c.water_gain * routed + tide + drift - drift.mean()
    return level.round(2)


def _sewers(
    s: _Static, rain: Floats, level: Floats, storage: Floats, rng: np.random.Generator
) -> tuple[Floats, Floats]:
    """The sewers' fill (0-1) and the water ponding on the streets (mm) per hour and district."""
    n_hours, n = rain.shape
    runoff = rain * ((0.2 + 0.8 * s.impervious) * s.concentration)[None, :]
    fast = np.clip(0.35 + s.slope / 20.0, 0.35, 0.95)  # share of runoff reaching the sewers in the hour
    backflow = 1.0 / (1.0 + np.exp(-(level[:, None] - (s.hand[None, :] - 1.0)) / 0.4))
    blockage = np.repeat(rng.lognormal(0.0, 0.25, (n_hours // 24, n)), 24, axis=0)
    drain = _EFFECTIVE * s.capacity[None, :] / blockage * (1.0 - 0.8 * backflow)
    fill, street = np.zeros((n_hours, n)), np.zeros((n_hours, n))
    flow, held, pond = np.zeros(n), np.zeros(n), np.zeros(n)
    for t in range(n_hours):  # a loop over hours, vectorized over districts
        flow = fast * runoff[t] + (1.0 - fast) * flow
        room = storage + drain[t]  # what the pipes hold and pass in an hour
        water = held + flow
        back = np.minimum(pond, _INLET * np.maximum(room - water, 0.0))  # street water drains back slowly
        water, pond = water + back, pond - back + np.maximum(water - room, 0.0)
        fill[t], street[t] = np.minimum(water / room, 1.0), pond
        held = np.maximum(np.minimum(water, room) - drain[t], 0.0)
    return fill, street


def _labels(s: _Static, street: Floats, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    ahead = np.max(np.stack([np.roll(street, -k, axis=0) for k in range(1, _HORIZON + 1)]), axis=0)
    threshold = _POND_MM * (0.4 + 1.2 * s.rel)
    seen = ahead * rng.lognormal(0.0, _NOISE, ahead.shape)  # unobserved local factors, reporting
    false_report = rng.random(ahead.shape) < 1.0 / 3000
    label: npt.NDArray[np.int64] = ((seen > threshold[None, :]) | false_report).astype(np.int64)
    return label


def _window(rain: Floats, hours: int) -> Floats:
    """Rain summed over the last ``hours`` hours, this one included (rows before that are zero)."""
    total: Floats = np.cumsum(rain, axis=0)
    out = total.copy()
    out[hours:] -= total[:-hours]
    return np.maximum(out, 0.0).round(1)


def _holdout_days(seed: int, days: int) -> npt.NDArray[np.bool_]:
    offsets = _rng(seed, "holdout").integers(0, _HOLDOUT_EVERY, -(-days // _HOLDOUT_EVERY))
    day = np.arange(days)
    return np.asarray(day % _HOLDOUT_EVERY == offsets[day // _HOLDOUT_EVERY])


def _columns(c: City, s: _Static, days: int, seed: int) -> dict[str, Floats | npt.NDArray[np.int64]]:
    """Every column but the ids, as (hours x districts) arrays over the scenario's hours."""
    rng = _rng(seed, c.key, "weather")
    n_days = _WARMUP_DAYS + days + 1  # one day past the end, for the label's and forecast's look-ahead
    rain = _rain(c, s, rng, n_days)
    level = np.broadcast_to(_water_level(c, rain, rng)[:, None], rain.shape)
    storage = _STORAGE_H * s.capacity
    sewer, street = _sewers(s, rain, level[:, 0], storage, rng)
    label = _labels(s, street, rng)
    ahead = np.roll(_window(rain, _HORIZON), -_HORIZON, axis=0)
    skill = np.repeat(rng.normal(-0.1, 0.6, (n_days, rain.shape[1])), 24, axis=0)  # a day's forecast bias
    forecast = np.round(ahead * np.exp(skill + rng.normal(0.0, 0.4, rain.shape)), 1)
    fill = np.clip(sewer + rng.normal(0.0, 0.06, rain.shape), 0.0, 1.0).round(3)
    hours = np.arange(len(rain), dtype=np.float64)[:, None] - _WARMUP_DAYS * 24
    phase = 2 * np.pi * (hours / 24.0 + START.timetuple().tm_yday - 1) / 365.25
    ones = np.ones_like(rain)
    cols: dict[str, Floats | npt.NDArray[np.int64]] = {
        "rain_1h": rain, "rain_3h": _window(rain, 3), "rain_24h": _window(rain, 24),
        "rain_72h": _window(rain, 72), "forecast_3h": forecast, "river_level": level, "drain_fill": fill,
        "elevation": ones * s.hand, "slope": ones * s.slope, "impervious": ones * s.impervious,
        "drain_capacity": ones * s.capacity, "past_incidents": ones * s.incidents,
        "season_sin": np.round(np.sin(phase) * ones, 4), "season_cos": np.round(np.cos(phase) * ones, 4),
        LABEL: label,
    }  # fmt: skip
    keep = slice(_WARMUP_DAYS * 24, (_WARMUP_DAYS + days) * 24)
    return {k: v[keep] for k, v in cols.items()}


def generate_city(city: City | str, *, days: int = DEFAULT_DAYS, seed: int = 2026) -> pa.Table:
    """The city's table: one row per district and hour (district-major), columns as the module says."""
    if days < 1:
        raise ValueError("days must be at least 1")
    c = _resolve(city)
    s = _static(c, seed)
    cols = _columns(c, s, days, seed)
    n_hours, n = days * 24, len(s.ids)
    hour = np.tile(np.arange(n_hours, dtype=np.int64), n)
    district = pa.array(np.repeat(np.array(s.ids, dtype=object), n_hours), pa.string())
    row_id = pc.binary_join_element_wise(
        district, pc.utf8_lpad(pc.cast(pa.array(hour), pa.string()), 6, "0"), "-"
    )
    holdout = np.tile(np.repeat(_holdout_days(seed, days), 24), n).astype(np.int64)
    data: dict[str, pa.Array] = {"row_id": row_id, "district": district, "hour": pa.array(hour)}
    for name in FEATURES:
        data[name] = pa.array(cols[name].astype(np.float64).T.reshape(-1))
    data[HOLDOUT] = pa.array(holdout)
    data[LABEL] = pa.array(cols[LABEL].T.reshape(-1))
    return pa.table(data)


def write_city(directory: Path, city: City | str, *, days: int = DEFAULT_DAYS, seed: int = 2026) -> Path:
    """Write the city's table to ``directory/<key>.parquet`` (created if missing); return the path."""
    c = _resolve(city)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{c.key}.parquet"
    pq.write_table(generate_city(c, days=days, seed=seed), path)
    return path


def risk_hour(table: pa.Table) -> int:
    """A holdout hour worth mapping: most districts waterlogged, then most rain in 3 h, then earliest."""
    hour = table.column("hour").to_numpy()
    mask = table.column(HOLDOUT).to_numpy() == 1
    if not mask.any():
        mask = np.ones_like(mask)
    hours = np.unique(hour[mask])
    index = np.searchsorted(hours, hour[mask])
    positives = np.bincount(index, table.column(LABEL).to_numpy()[mask], len(hours))
    rain = np.bincount(index, table.column("rain_3h").to_numpy()[mask], len(hours))
    best = np.lexsort((hours, -rain, -positives))[0]
    return int(hours[best])
