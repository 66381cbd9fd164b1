"""Synthetic previews: plausible rows made from a schema alone — never from the data.

:func:`synthetic_preview` sees only column names, type names and nullability
(a catalog schema), so a preview can be shown to anyone who may see the catalog.
Values are deterministic per ``seed`` (each column draws from its own
``random.Random`` seeded with ``"seed:column"``, stable across processes and
Python versions): strings ``sample_<column>_<i>``, ints, floats with two
decimals, dates in 2020-2025, booleans; a nullable column is null about one
time in ten. Unknown type names get string samples.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["synthetic_preview"]

_EPOCH = dt.datetime(2020, 1, 1)
_SPAN_S = 6 * 365 * 86_400


def _timestamp(rng: random.Random) -> dt.datetime:
    return _EPOCH + dt.timedelta(seconds=rng.randrange(_SPAN_S))


_MAKERS: dict[str, Callable[[random.Random, str, int], Any]] = {
    "bool": lambda r, c, i: r.random() < 0.5,
    "int32": lambda r, c, i: r.randrange(0, 10_000),
    "int64": lambda r, c, i: r.randrange(0, 1_000_000),
    "uint64": lambda r, c, i: r.randrange(0, 1_000_000),
    "float32": lambda r, c, i: round(r.uniform(0, 1000), 2),
    "float64": lambda r, c, i: round(r.uniform(0, 100_000), 2),
    "decimal": lambda r, c, i: f"{r.randrange(0, 100_000)}.{r.randrange(100):02d}",
    "binary": lambda r, c, i: r.randbytes(8).hex(),
    "date": lambda r, c, i: _timestamp(r).date().isoformat(),
    "time": lambda r, c, i: _timestamp(r).time().isoformat(),
    "timestamp": lambda r, c, i: _timestamp(r).isoformat(),
    "duration": lambda r, c, i: f"PT{r.randrange(1, 86_400)}S",
    "json": lambda r, c, i: f'["sample_{c}_{i}"]',
}


def _string(rng: random.Random, col: str, i: int) -> str:
    return f"sample_{col}_{i}"


def synthetic_preview(
    schema: Sequence[Mapping[str, Any]], n: int = 5, seed: int | str = 0
) -> list[dict[str, Any]]:
    """``n`` JSON-able rows for ``schema`` (``ColumnSpec``-shaped dicts), deterministic per ``seed``."""
    if n < 0:
        raise ValueError("n must be >= 0")
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for col in schema:
        name, type_ = str(col["name"]), str(col.get("type", "string"))
        rng = random.Random(f"{seed}:{name}")
        make = _MAKERS.get(type_, _string)
        nullable = bool(col.get("nullable", True))
        for i, row in enumerate(rows):
            row[name] = None if nullable and rng.random() < 0.1 else make(rng, name, i)
    return rows
