"""JSON and JSON Lines connectors: semi-structured records flattened into columns.

Specs: ``{"type": "jsonl", "path": "..."}`` — one JSON object per line, blank
lines skipped, streamed in chunks of 10,000 lines (memory is one chunk);
``{"type": "json", "path": "...", "records": "data.items"}`` — one JSON
document: an array of objects, a single object (one row), or an object holding
the array at the dotted ``records`` path. **The JSON document is parsed whole**
(``json.loads``), so its size is bounded by memory; use JSON Lines for large data.

Flattening and types follow :mod:`.schema` (``a.b.c`` for nested objects, lists
as ``json`` values). Types are joined over *every* record, so ``describe()``
parses the file once (in Python: slower than the CSV path) while another thread
hashes the raw bytes for the content digest; :meth:`batches` makes a second pass
with the settled types. Parse errors carry the line number.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any

import pyarrow as pa

from .base import Connector, DatasetProfile, select_columns
from .digest import CHUNK_SIZE, BackgroundDigest
from .errors import MalformedJSON, SchemaError
from .schema import TypeTracker, arrow_schema, flatten, to_batch

__all__ = ["JsonConnector", "JsonlConnector", "records_at"]

CHUNK_LINES = 10_000
_HINT = "fix the JSON at that line (each record must be a JSON object)"


def records_at(doc: Any, path: str | None, source: str) -> list[Any]:
    """The list of records inside a parsed document: at dotted ``path``, or the document itself."""
    for key in path.split(".") if path else ():
        if not isinstance(doc, dict) or key not in doc:
            raise SchemaError(
                f"{source} has no {path!r} member", "check the 'records' path in the source spec"
            )
        doc = doc[key]
    if isinstance(doc, dict):
        return [doc]
    if not isinstance(doc, list):
        raise MalformedJSON(
            source, "the records are neither an array nor an object", "point 'records' at an array of objects"
        )
    return doc


def flat_records(records: list[Any], source: str) -> Iterator[dict[str, Any]]:
    for i, rec in enumerate(records, 1):
        if not isinstance(rec, dict):
            raise MalformedJSON(source, f"record {i} is not a JSON object", "make every record an object")
        yield flatten(rec)


class _JsonBase(Connector):
    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__(spec)
        self.path = self._existing_path()
        self._columns: list[dict[str, Any]] | None = None

    @abstractmethod
    def _chunks(self) -> Iterator[list[dict[str, Any]]]:
        """Flattened records, a chunk at a time."""

    def _infer(self) -> TypeTracker:
        tracker = TypeTracker()
        for chunk in self._chunks():
            for row in chunk:
                tracker.observe(row.items())
        if tracker.rows == 0:
            raise SchemaError(f"{self.path.name} holds no records", "add at least one JSON object")
        self._columns = tracker.columns()
        return tracker

    def describe(self) -> DatasetProfile:
        with BackgroundDigest(self.path) as digest:
            tracker = self._infer()
            fd = digest.result()
        details = {
            "file": self.path.name,
            "bytes": fd.size,
            "chunks": fd.chunks,
            "chunk_size": CHUNK_SIZE,
            "digest_of": "raw file bytes",
            "flattening": "nested objects -> a.b.c; lists -> json text",
        }
        return DatasetProfile("table", tracker.columns(), tracker.rows, fd.digest, details)

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        if self._columns is None:
            self._infer()
        assert self._columns is not None
        names = select_columns([c["name"] for c in self._columns], columns)
        wanted = [c for n in names for c in self._columns if c["name"] == n]
        schema, types = arrow_schema(wanted), {c["name"]: c["type"] for c in wanted}
        for chunk in self._chunks():
            yield to_batch(chunk, schema, types)


class JsonlConnector(_JsonBase):
    """JSON Lines file (kind ``table``), streamed."""

    type_name = "jsonl"

    def _chunks(self) -> Iterator[list[dict[str, Any]]]:
        chunk: list[dict[str, Any]] = []
        with open(self.path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise MalformedJSON(
                        self.path.name, f"{exc.msg} (column {exc.colno})", _HINT, line=lineno
                    ) from None
                except UnicodeDecodeError:
                    raise MalformedJSON(
                        self.path.name, "not UTF-8 text", "re-encode the file as UTF-8", line=lineno
                    ) from None
                if not isinstance(obj, dict):
                    raise MalformedJSON(self.path.name, "the line is not a JSON object", _HINT, line=lineno)
                try:
                    chunk.append(flatten(obj))
                except SchemaError as exc:
                    raise SchemaError(f"{self.path.name}, line {lineno}: {exc.problem}", exc.hint) from None
                if len(chunk) == CHUNK_LINES:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk


class JsonConnector(_JsonBase):
    """One JSON document holding the records (kind ``table``); parsed whole."""

    type_name = "json"

    def _chunks(self) -> Iterator[list[dict[str, Any]]]:
        try:
            doc = json.loads(self.path.read_bytes())
        except json.JSONDecodeError as exc:
            raise MalformedJSON(
                self.path.name,
                f"{exc.msg} (column {exc.colno})",
                "fix the JSON syntax at that line",
                line=exc.lineno,
            ) from None
        except UnicodeDecodeError:
            raise MalformedJSON(self.path.name, "not UTF-8 text", "re-encode the file as UTF-8") from None
        records = records_at(doc, self._option("records", str), self.path.name)
        rows = flat_records(records, self.path.name)
        while chunk := list(islice(rows, CHUNK_LINES)):
            yield chunk
