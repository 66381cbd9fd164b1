"""CSV connector: pyarrow's streaming CSV reader, types inferred by Arrow, a Merkle digest of the raw bytes.

Spec: ``{"type": "csv", "path": "...", "delimiter": ",", "column_types": {"col": "int64"}}``.

``describe()`` makes one parsing pass with :func:`pyarrow.csv.open_csv` (Arrow's
thread pool) while a second thread hashes the same file for the content digest
(see :mod:`.digest`). Memory does not depend on the file size: Arrow's reader
keeps a fixed number of blocks in flight (about 32), so the block size sets the
footprint — measured on 600 MB: 1 MiB blocks parse as fast as 8 MiB ones with
~37 MB of Arrow memory instead of ~300 MB. A row longer than a block makes the
reader retry with blocks twice as large (up to 64 MiB).

Arrow infers column types from the first block; when a later block holds a
value that does not fit (``1.5`` after integers), the column is widened
(null → int64 → float64 → string, date → timestamp → string, anything else →
string) and the parse
restarts — rare, and reported in ``details["widened"]``.

The first line is the header. An empty field is null in every column (CSV has no
other way to write one), so a string column with empty fields is nullable.
Arrow is lenient with stray quotes inside an unquoted field (``a"b`` is read as
is); a row with the wrong number of fields, or an unterminated quote that
swallows the next line, is :class:`MalformedCSV` with its line number.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from .base import Connector, DatasetProfile, select_columns
from .digest import CHUNK_SIZE, BackgroundDigest
from .errors import InvalidSpec, MalformedCSV, SchemaError
from .schema import TYPE_NAMES, arrow_type, column, type_name

__all__ = ["CsvConnector"]

BLOCK_SIZE = 1 << 20
MAX_BLOCK_SIZE = 64 << 20
_MAX_RETRIES = 256
_RAGGED = re.compile(r"^CSV parse error: (Expected \d+ columns, got \d+)(?:: (.*))?$", re.S)
_CONVERSION = re.compile(r"^In CSV column #(\d+): .*?CSV conversion error to ([^:]+):", re.S)
_WIDER = {
    "null": pa.int64(),
    "int64": pa.float64(),
    "date32[day]": pa.timestamp("ns"),
    "timestamp[s]": pa.timestamp("ns"),
}


def _line_of(path: Path, snippet: str) -> int | None:
    """1-based line on which ``snippet`` first starts a line, found by streaming; None if absent."""
    needle = b"\n" + snippet.encode()
    hay_start_lines = -1  # newlines before ``hay``; -1 pays for the virtual newline before line 1
    carry = b"\n"
    with open(path, "rb") as f:
        while block := f.read(BLOCK_SIZE):
            hay = carry + block
            at = hay.find(needle)
            if at >= 0:
                return hay_start_lines + hay.count(b"\n", 0, at + 1) + 1
            keep = min(len(needle), len(hay))
            hay_start_lines += hay.count(b"\n", 0, len(hay) - keep)
            carry = hay[len(hay) - keep :]
    return None


class CsvConnector(Connector):
    """Delimited text with a header row (kind ``table``)."""

    type_name = "csv"

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__(spec)
        self.path = self._existing_path()
        self._delimiter = self._option("delimiter", str, ",")
        if len(self._delimiter) != 1:
            raise InvalidSpec("'delimiter' must be one character", 'use e.g. "," or ";" or "\\t"')
        declared = self._option("column_types", dict, {})
        bad = {k: v for k, v in declared.items() if v not in TYPE_NAMES}
        if bad:
            raise InvalidSpec(f"unknown column types {bad}", f"use one of: {', '.join(TYPE_NAMES)}")
        self._types: dict[str, pa.DataType] = {k: arrow_type(v) for k, v in declared.items()}
        self._declared = set(declared)
        self._names: list[str] = []
        self._widened: list[str] = []
        self._block = BLOCK_SIZE
        self._schema: pa.Schema | None = None

    def _reader(self, include: list[str] | None = None) -> pcsv.CSVStreamingReader:
        return pcsv.open_csv(
            self.path,
            read_options=pcsv.ReadOptions(block_size=self._block, use_threads=True),
            parse_options=pcsv.ParseOptions(delimiter=self._delimiter),
            convert_options=pcsv.ConvertOptions(
                column_types=self._types, include_columns=include or [], strings_can_be_null=True
            ),
        )

    def _header(self) -> list[str]:
        """Column names, from a reader that infers every type (no conversion can fail on open)."""
        opts = pcsv.ReadOptions(block_size=self._block)
        names: list[str] = pcsv.open_csv(
            self.path, read_options=opts, parse_options=pcsv.ParseOptions(delimiter=self._delimiter)
        ).schema.names
        return names

    def _scan_once(self) -> tuple[pa.Schema, int, list[bool]]:
        reader = self._reader()
        self._names = reader.schema.names
        rows, has_null = 0, [False] * len(self._names)
        for batch in reader:
            rows += batch.num_rows
            for i, col in enumerate(batch.columns):
                has_null[i] = has_null[i] or col.null_count > 0
        return reader.schema, rows, has_null

    def _scan(self) -> tuple[pa.Schema, int, list[bool]]:
        """One parsing pass; on a type conflict widen that column and parse again."""
        for _ in range(_MAX_RETRIES):  # each retry widens a column type or the block size
            try:
                return self._scan_once()
            except pa.ArrowInvalid as exc:
                self._on_error(str(exc))
        raise SchemaError(f"{self.path.name}: column types keep changing", 'pass "column_types" in the spec')

    def _on_error(self, msg: str) -> None:
        if msg.startswith("Empty CSV file"):
            raise SchemaError(f"{self.path.name} is empty", "a CSV source needs a header row and data rows")
        if "straddles" in msg:
            if self._block >= MAX_BLOCK_SIZE:
                raise MalformedCSV(
                    self.path.name, "a row is longer than 64 MiB", "split the row or the field"
                )
            self._block *= 2  # a row longer than a block
            return
        conv = _CONVERSION.match(msg)
        if conv:
            names = self._names or self._header()
            name, current = names[int(conv.group(1))], conv.group(2).strip()
            if name in self._declared:
                raise SchemaError(
                    f"column {name!r} holds a value that is not {current}",
                    'fix the value or change the column\'s type in "column_types"',
                )
            self._types[name] = _WIDER.get(current, pa.string())
            self._widened.append(f"{name}: {current} -> {type_name(self._types[name])}")
            return
        ragged = _RAGGED.match(msg)
        if ragged:
            line = _line_of(self.path, ragged.group(2)) if ragged.group(2) else None
            raise MalformedCSV(
                self.path.name,
                ragged.group(1).lower() + " (a ragged row or a broken quote)",
                "fix that row so every row has as many fields as the header",
                line=line,
            )
        raise MalformedCSV(self.path.name, msg.split(":")[0], "check that the file is CSV with a header row")

    def _settle(self) -> tuple[pa.Schema, int, list[bool]]:
        """Scan, then pin every column's type so later reads give the same schema."""
        schema, rows, has_null = self._scan()
        if rows == 0:
            untyped = [f.name for f in schema if pa.types.is_null(f.type) and f.name not in self._types]
            if untyped:
                raise SchemaError(
                    f"{self.path.name} has a header but no data rows, so {untyped} have no type",
                    'add rows or pass "column_types" in the source spec',
                )
        for f in schema:  # all-empty columns are served as strings
            self._types.setdefault(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
        self._schema = schema
        return schema, rows, has_null

    def describe(self) -> DatasetProfile:
        with BackgroundDigest(self.path) as digest:
            schema, rows, has_null = self._settle()
            fd = digest.result()
        cols = [column(f.name, type_name(f.type), n) for f, n in zip(schema, has_null, strict=True)]
        details = {
            "file": self.path.name,
            "bytes": fd.size,
            "chunks": fd.chunks,
            "chunk_size": CHUNK_SIZE,
            "digest_of": "raw file bytes",
            "widened": self._widened,
        }
        return DatasetProfile("table", cols, rows, fd.digest, details)

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """Rows with the types :meth:`describe` settled (a scan runs first if it has not)."""
        if self._schema is None:
            self._settle()
        names = select_columns(list(self._names), columns)
        try:
            yield from self._reader(include=names)
        except pa.ArrowInvalid as exc:
            self._on_error(str(exc))
            raise SchemaError(f"{self.path.name} changed while being read", "describe() it again") from None
