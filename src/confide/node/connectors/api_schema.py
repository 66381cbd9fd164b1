"""Columns from a JSON Schema or an OpenAPI 3 document describing an endpoint's records.

For OpenAPI, the schema is the ``200`` ``application/json`` response of the
``GET`` operation whose path matches the data URL's path (exactly, or as a
suffix after a server base path; ``{param}`` segments match any segment).
``$ref`` pointers are followed inside the document only (``#/...``). The
optional ``records`` path descends through ``properties``; an ``array`` schema
stands for its ``items``. Object properties flatten to dotted columns like JSON
data (:mod:`.schema`); ``integer`` → int64, ``number`` → float64, ``boolean`` →
bool, ``string`` (``format`` date / date-time / time / byte → date / timestamp
/ time / binary), ``array`` and free-form objects → json. A column is
``nullable: false`` when it is ``required`` (all the way up) and not nullable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from .errors import SchemaError
from .schema import column

__all__ = ["columns_from_schema_doc"]

_FORMATS = {"date": "date", "date-time": "timestamp", "time": "time", "byte": "binary", "binary": "binary"}
_SIMPLE = {"integer": "int64", "number": "float64", "boolean": "bool"}


def _fail(why: str) -> SchemaError:
    return SchemaError(
        f"the schema document {why}", "point 'schema_url' at a JSON Schema or OpenAPI 3 document"
    )


def _resolve(doc: dict[str, Any], node: Any, depth: int = 0) -> dict[str, Any]:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if depth > 32 or not isinstance(ref, str) or not ref.startswith("#/"):
            raise _fail(f"has a $ref it cannot follow: {str(ref)[:80]!r}")
        node = doc
        for part in ref[2:].split("/"):
            node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
        depth += 1
    if not isinstance(node, dict):
        raise _fail("has a schema that is not an object")
    return node


def _openapi_schema(doc: dict[str, Any], data_url: str) -> Any:
    path = urlsplit(data_url).path.rstrip("/") or "/"
    for template, item in (doc.get("paths") or {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template.rstrip("/") or "/"))
        if re.fullmatch(f"(?:/.*)?{pattern}", path):
            try:
                return item["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            except (KeyError, TypeError):
                raise _fail(f"has no GET 200 application/json response for {template!r}") from None
    raise _fail(f"has no path matching {path!r}")


def _types(node: dict[str, Any]) -> tuple[str | None, bool]:
    t = node.get("type")
    nullable = bool(node.get("nullable", False))
    if isinstance(t, list):
        nullable = nullable or "null" in t
        rest = [x for x in t if x != "null"]
        t = rest[0] if len(rest) == 1 else None
    return (t if isinstance(t, str) else None), nullable


def _walk(doc: dict[str, Any], node: dict[str, Any], prefix: str, optional: bool) -> Iterator[dict[str, Any]]:
    required = set(node.get("required") or ())
    for name, raw in (node.get("properties") or {}).items():
        child = _resolve(doc, raw)
        t, nullable = _types(child)
        nullable = nullable or optional or name not in required
        if t == "object" and child.get("properties"):
            yield from _walk(doc, child, f"{prefix}{name}.", nullable)
        elif t == "string":
            yield column(f"{prefix}{name}", _FORMATS.get(child.get("format", ""), "string"), nullable)
        else:
            yield column(f"{prefix}{name}", _SIMPLE.get(t or "", "json"), nullable)


def columns_from_schema_doc(doc: Any, data_url: str, records: str | None) -> tuple[str, list[dict[str, Any]]]:
    """``(source, columns)`` where source is ``"openapi"`` or ``"json-schema"``."""
    if not isinstance(doc, dict):
        raise _fail("is not a JSON object")
    source = "openapi" if "openapi" in doc else "json-schema"
    node = _resolve(doc, _openapi_schema(doc, data_url) if source == "openapi" else doc)
    for key in records.split(".") if records else ():
        props = node.get("properties") or {}
        if key not in props:
            raise _fail(f"has no property {key!r} on the 'records' path")
        node = _resolve(doc, props[key])
    if _types(node)[0] == "array":
        node = _resolve(doc, node.get("items"))
    cols = list(_walk(doc, node, "", False))
    if not cols:
        raise _fail("describes records without properties")
    return source, cols
