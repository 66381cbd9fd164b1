"""Parquet connector: schema and row count from the file footer, a Merkle digest of the raw bytes.

Spec: ``{"type": "parquet", "path": "..."}``.

``describe()`` reads only the footer (schema, row groups, statistics) — no page
is decoded — while the file is hashed for the content digest. Struct columns are
reported flattened (``a.b``) like JSON; list and map columns have type ``json``
in the catalog but :meth:`ParquetConnector.batches` yields them as native Arrow
lists and maps (``ParquetFile.iter_batches``), struct columns flattened to the
catalog's dotted names.
A column is ``nullable: false`` when the schema says *required*, or when every
row group carries a null count and all of them are zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .base import Connector, DatasetProfile, select_columns
from .digest import CHUNK_SIZE, BackgroundDigest
from .errors import MalformedParquet
from .schema import column, type_name

__all__ = ["ParquetConnector"]

BATCH_ROWS = 65_536


def _leaves(field: pa.Field, prefix: str = "") -> Iterator[tuple[str, pa.DataType, bool]]:
    """(dotted name, type, declared nullable) of each catalog column under ``field``."""
    name = f"{prefix}{field.name}"
    if pa.types.is_struct(field.type):
        for i in range(field.type.num_fields):
            child = field.type.field(i)
            for leaf_name, t, nullable in _leaves(child, name + "."):
                yield leaf_name, t, nullable or field.nullable
    else:
        yield name, field.type, field.nullable


def _null_free(meta: pq.FileMetaData) -> set[str]:
    """Leaf column paths whose every row group reports a null count of zero."""
    if meta.num_row_groups == 0:
        return set()
    free: set[str] | None = None
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        here = set()
        for c in range(group.num_columns):
            col = group.column(c)
            stats = col.statistics
            if stats is not None and stats.has_null_count and stats.null_count == 0:
                here.add(col.path_in_schema)
        free = here if free is None else free & here
    return free or set()


class ParquetConnector(Connector):
    """Apache Parquet file (kind ``table``)."""

    type_name = "parquet"

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__(spec)
        self.path = self._existing_path()

    def _open(self) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as exc:
            reason = "not a Parquet file" if "magic" in str(exc).lower() else "unreadable Parquet footer"
            raise MalformedParquet(self.path.name, reason, "check the file was fully written") from None

    def describe(self) -> DatasetProfile:
        with BackgroundDigest(self.path) as digest:
            pf = self._open()
            meta = pf.metadata
            free = _null_free(meta)
            cols = []
            for field in pf.schema_arrow:
                for name, t, nullable in _leaves(field):
                    cols.append(column(name, type_name(t), nullable and name not in free))
            fd = digest.result()
        details = {
            "file": self.path.name,
            "bytes": fd.size,
            "chunks": fd.chunks,
            "chunk_size": CHUNK_SIZE,
            "digest_of": "raw file bytes",
            "row_groups": meta.num_row_groups,
            "created_by": meta.created_by,
        }
        return DatasetProfile("table", cols, meta.num_rows, fd.digest, details)

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """Catalog columns by name (struct fields flattened, as in :meth:`describe`)."""
        pf = self._open()
        leaves = [name for field in pf.schema_arrow for name, _, _ in _leaves(field)]
        names = select_columns(leaves, columns)
        tops = list(dict.fromkeys(self._top_level(pf, n) for n in names))
        try:
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=tops):
                flat = dict(_flat_arrays(batch))
                yield pa.RecordBatch.from_arrays([flat[n] for n in names], names=names)
        except (pa.ArrowInvalid, OSError):
            raise MalformedParquet(
                self.path.name, "a data page does not decode", "check the file was fully written"
            ) from None

    @staticmethod
    def _top_level(pf: pq.ParquetFile, name: str) -> str:
        top = pf.schema_arrow.names
        return name if name in top else next(t for t in top if name.startswith(t + "."))


def _flat_arrays(batch: pa.RecordBatch) -> Iterator[tuple[str, pa.Array]]:
    stack = list(zip(batch.schema.names, batch.columns, strict=True))
    while stack:
        name, arr = stack.pop(0)
        if pa.types.is_struct(arr.type):
            kids = arr.flatten()  # parent nulls propagate into the children
            stack[:0] = [(f"{name}.{arr.type.field(i).name}", kids[i]) for i in range(arr.type.num_fields)]
        else:
            yield name, arr
