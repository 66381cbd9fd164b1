"""The connector plugin interface, the profile it returns, and the registry of connectors by name.

A connector is built from a *source spec*, a small JSON-able dict naming its
``type`` and where the data is (``path``, ``url``, ``table``/``query``…). It
offers two calls:

* :meth:`Connector.describe` — one full pass over the source; returns a
  :class:`DatasetProfile` with what goes on the ledger (kind, schema, row count,
  content digest) plus connector details. It never returns a data value.
* :meth:`Connector.batches` (tables) or :meth:`Connector.files` (folders) —
  stream the data to an engine as Arrow record batches or file entries.

Connectors are imported lazily, so using CSV never imports SQLAlchemy or httpx.
"""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, cast

import pyarrow as pa
from pydantic import ValidationError

from ...ledger.contract.models import ColumnSpec
from .errors import InvalidSpec, SchemaError, SourceNotFound, UnknownConnector, UnsupportedOperation

__all__ = ["Connector", "DatasetProfile", "FileEntry", "connector_names", "open_connector"]

_REGISTRY: dict[str, str] = {
    "csv": "csv_file:CsvConnector",
    "parquet": "parquet_file:ParquetConnector",
    "json": "json_file:JsonConnector",
    "jsonl": "json_file:JsonlConnector",
    "sql": "sql_db:SqlConnector",
    "files": "folder:FolderConnector",
    "api": "http_api:ApiConnector",
}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class DatasetProfile:
    """What :meth:`Connector.describe` learned; ``schema`` holds ``ColumnSpec``-shaped dicts."""

    kind: str
    schema: list[dict[str, Any]]
    row_count: int
    content_digest: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.schema:
            raise SchemaError("the source has no columns", "check that it holds data with named fields")
        seen: set[str] = set()
        for i, col in enumerate(self.schema):
            if not col.get("name"):
                raise SchemaError(f"column {i + 1} has an empty name", "give every column a header")
            if col["name"] in seen:
                raise SchemaError(f"duplicate column name {col['name']!r}", "rename one of the columns")
            seen.add(col["name"])
            try:
                ColumnSpec.model_validate(col)
            except ValidationError as exc:
                raise SchemaError(
                    f"column {col['name']!r} does not fit the catalog: {exc.errors()[0]['msg']}",
                    "shorten or rename the column",
                ) from None
        if not _HEX64.match(self.content_digest) or self.row_count < 0:
            raise ValueError("content_digest must be 64 lower-case hex and row_count >= 0")

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict: the registration fields plus ``details``."""
        return {
            "kind": self.kind,
            "schema": [dict(c) for c in self.schema],
            "row_count": self.row_count,
            "content_digest": self.content_digest,
            "details": self.details,
        }

    def registration(self) -> dict[str, Any]:
        """Keyword arguments for ``sdk.register_dataset`` (kind, schema, row_count, content_digest)."""
        out = self.to_json()
        del out["details"]
        return out


@dataclass(frozen=True)
class FileEntry:
    """One file of an unstructured source; ``digest`` is its Merkle root (hex)."""

    relpath: str
    path: Path
    size: int
    media_type: str
    digest: str

    def open(self) -> IO[bytes]:
        return open(self.path, "rb")


class Connector(ABC):
    """A data source behind one narrow interface. Subclasses set ``type_name`` and ``kind``."""

    type_name: ClassVar[str]
    kind: ClassVar[str] = "table"

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = dict(spec)

    @abstractmethod
    def describe(self) -> DatasetProfile:
        """Read the whole source once; return schema, row count, content digest (never values)."""

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """Stream the rows (only ``columns``, in that order, when given) as Arrow record batches."""
        raise UnsupportedOperation(f"a {self.type_name!r} source has no rows", "read it with files()")

    def files(self) -> Iterator[FileEntry]:
        """Stream the files of an unstructured source, in digest order."""
        raise UnsupportedOperation(f"a {self.type_name!r} source is not a set of files", "use batches()")

    # helpers shared by the connectors
    def _option(
        self, key: str, types: type | tuple[type, ...], default: Any = None, required: bool = False
    ) -> Any:
        value = self.spec.get(key, default)
        if value is None and required:
            raise InvalidSpec(f"a {self.type_name!r} source needs {key!r}", f"add {key!r} to the source spec")
        if value is not None and not isinstance(value, types):
            raise InvalidSpec(f"source option {key!r} has the wrong type", f"see the {self.type_name} docs")
        return value

    def _existing_path(self, want_dir: bool = False) -> Path:
        path = Path(self._option("path", (str, Path), required=True))
        if not (path.is_dir() if want_dir else path.is_file()):
            what = "folder" if want_dir else "file"
            raise SourceNotFound(f"{what} {str(path)!r}", f"check the path; it must be an existing {what}")
        return path


def connector_names() -> list[str]:
    """Registered source types, sorted."""
    return sorted(_REGISTRY)


def select_columns(available: list[str], columns: list[str] | None) -> list[str]:
    if columns is None:
        return available
    missing = [c for c in columns if c not in available]
    if missing:
        raise InvalidSpec(f"unknown column(s) {missing}", f"pick from: {', '.join(available)}")
    return columns


def open_connector(spec: Mapping[str, Any]) -> Connector:
    """Build the connector a source spec names, e.g. ``{"type": "csv", "path": "x.csv"}``."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("type"), str):
        raise InvalidSpec(
            "a source spec is a dict with a string 'type'", f"types: {', '.join(connector_names())}"
        )
    name = spec["type"]
    if name not in _REGISTRY:
        raise UnknownConnector(name, connector_names())
    module, cls = _REGISTRY[name].split(":")
    factory = getattr(importlib.import_module(f"{__package__}.{module}"), cls)
    return cast(Connector, factory(spec))
