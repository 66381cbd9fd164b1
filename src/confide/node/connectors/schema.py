"""Column types: the catalog's simple type names, Arrow mapping, inference for semi-structured rows.

Type names (what goes into ``ColumnSpec.type``): ``bool``, ``int32``, ``int64``,
``uint64``, ``float32``, ``float64``, ``decimal``, ``string``, ``binary``,
``date``, ``time``, ``timestamp``, ``duration`` and ``json`` (any nested value:
lists, maps, Arrow lists and unions, carried as canonical JSON text when a
connector has to turn it into Arrow itself). A column that holds only nulls is
reported as ``string``: every value fits a string.

Flattening (JSON, JSONL, API samples): nested objects become dotted column
names, ``{"a": {"b": {"c": 1}}}`` → column ``a.b.c``; an empty object adds no
column; lists are *not* exploded — a list is one ``json`` value. A literal key
that collides with a flattened path (``"a.b"`` next to ``"a": {"b": …}``) is a
:class:`SchemaError`. Columns keep the order in which they were first seen.

``nullable`` is False only when no null can occur: declared ``NOT NULL`` /
required, or — for inferred schemas — no null seen in a full pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import pyarrow as pa

from .digest import json_text
from .errors import SchemaError

__all__ = [
    "TYPE_NAMES",
    "TypeTracker",
    "arrow_schema",
    "arrow_type",
    "column",
    "flatten",
    "join_types",
    "to_batch",
    "type_name",
    "value_type",
]

TYPE_NAMES = ("bool", "int32", "int64", "uint64", "float32", "float64", "decimal", "string", "binary",
              "date", "time", "timestamp", "duration", "json")  # fmt: skip

_TO_ARROW: dict[str, pa.DataType] = {
    "bool": pa.bool_(), "int32": pa.int32(), "int64": pa.int64(), "uint64": pa.uint64(),
    "float32": pa.float32(), "float64": pa.float64(), "decimal": pa.string(), "string": pa.string(),
    "binary": pa.binary(), "date": pa.date32(), "time": pa.time64("us"), "timestamp": pa.timestamp("us"),
    "duration": pa.duration("us"), "json": pa.string(),
}  # fmt: skip
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def column(name: str, type_: str, nullable: bool = True, description: str = "") -> dict[str, Any]:
    """A ``ColumnSpec``-shaped dict."""
    return {"name": name, "type": type_, "nullable": nullable, "description": description}


def type_name(t: pa.DataType) -> str:
    """Arrow type → catalog type name."""
    if pa.types.is_dictionary(t):
        return type_name(t.value_type)
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        if t.bit_width <= 16 or t == pa.int32():
            return "int32"
        return "uint64" if t == pa.uint64() else "int64"
    if pa.types.is_floating(t):
        return "float64" if t == pa.float64() else "float32"
    for pred, name in ((pa.types.is_decimal, "decimal"), (pa.types.is_null, "string"),
                       (pa.types.is_date, "date"), (pa.types.is_time, "time"),
                       (pa.types.is_timestamp, "timestamp"), (pa.types.is_duration, "duration")):  # fmt: skip
        if pred(t):
            return name
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "binary"
    return "json"


def arrow_type(name: str) -> pa.DataType:
    """Catalog type name → the Arrow type connectors produce (``decimal``/``json`` as text)."""
    return _TO_ARROW.get(name, pa.string())


def arrow_schema(columns: Iterable[Mapping[str, Any]]) -> pa.Schema:
    return pa.schema([pa.field(c["name"], arrow_type(c["type"]), c.get("nullable", True)) for c in columns])


_BY_TYPE: dict[type, str | None] = {type(None): None, bool: "bool", float: "float64", str: "string"}


def value_type(v: Any) -> str | None:
    """Catalog type of one Python value (None for null)."""
    t = type(v)
    if t in _BY_TYPE:
        return _BY_TYPE[t]
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64" if _INT64_MIN <= v <= _INT64_MAX else "decimal"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dt.datetime):
        return "timestamp"
    if isinstance(v, dt.date):
        return "date"
    for cls, name in ((dt.time, "time"), (dt.timedelta, "duration"), (Decimal, "decimal"),
                      (bytes, "binary"), (bytearray, "binary"), (list, "json"), (dict, "json")):  # fmt: skip
        if isinstance(v, cls):
            return name
    return "string"


_JOINS = {
    frozenset({"int64", "float64"}): "float64",
    frozenset({"int64", "decimal"}): "decimal",
    frozenset({"date", "timestamp"}): "timestamp",
}


def join_types(a: str | None, b: str | None) -> str | None:
    """Least type holding both (None = only nulls seen); ``json`` absorbs all, else ``string``."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if "json" in (a, b):
        return "json"
    return _JOINS.get(frozenset({a, b}), "string")


def flatten(obj: Mapping[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested objects → dotted keys; lists stay values. See the module docstring."""
    flat: dict[str, Any] = {} if out is None else out
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flatten(value, name + ".", flat)
            continue
        if name in flat:
            raise SchemaError(
                f"column {name!r} appears both as a key and as a nested path",
                "rename one of the two keys in the source",
            )
        flat[name] = value
    return flat


class TypeTracker:
    """Running schema over flattened rows: first-seen column order, joined types, null presence."""

    def __init__(self, declared: Mapping[str, str] | None = None) -> None:
        self.types: dict[str, str | None] = {}
        self._nonnull: dict[str, int] = {}
        self.rows = 0
        self._declared = dict(declared or {})

    def observe(self, items: Iterable[tuple[str, Any]]) -> None:
        """One row as ``(column, value)`` pairs (``row.items()`` or ``zip(keys, values)``)."""
        self.rows += 1
        types, nonnull = self.types, self._nonnull
        for name, v in items:
            t = value_type(v)
            if name not in types:
                types[name] = t
                nonnull[name] = 0
            elif t is not None and t != types[name]:
                types[name] = join_types(types[name], t)
            if t is not None:
                nonnull[name] += 1

    def add_column(self, name: str) -> None:
        """Register a column known before any row (SQL result keys)."""
        self.types.setdefault(name, None)
        self._nonnull.setdefault(name, 0)

    def columns(self, declared_nullable: Mapping[str, bool] | None = None) -> list[dict[str, Any]]:
        out = []
        for name, t in self.types.items():
            nullable = self._nonnull[name] < self.rows
            if declared_nullable is not None and name in declared_nullable:
                nullable = declared_nullable[name]
            out.append(column(name, self._declared.get(name) or t or "string", nullable))
        return out


def _convert(v: Any, t: str) -> Any:
    if v is None:
        return None
    if t == "json":
        return json_text(v)
    if t in ("string", "decimal"):
        return v if isinstance(v, str) else (json_text(v) if isinstance(v, list | dict | bool) else str(v))
    if t == "float64" or t == "float32":
        return float(v)
    if t == "timestamp" and not isinstance(v, dt.datetime) and isinstance(v, dt.date):
        return dt.datetime.combine(v, dt.time())
    return v


def to_batch(
    rows: Iterable[Mapping[str, Any]], schema: pa.Schema, types: Mapping[str, str]
) -> pa.RecordBatch:
    """Flattened rows → one record batch of ``schema`` (missing keys are nulls)."""
    rows = list(rows)
    arrays = []
    for f in schema:
        t = types[f.name]
        try:
            arrays.append(pa.array([_convert(r.get(f.name), t) for r in rows], type=f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            raise SchemaError(
                f"column {f.name!r} holds a value that is not of its type {t!r}",
                "describe() the source again so its schema matches the data",
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
