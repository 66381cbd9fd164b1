"""API connector: an HTTP endpoint that serves JSON records, offered as a data service (kind ``api``).

Spec: ``{"type": "api", "url": "https://host/v1/records", "records": "data.items",
"schema_url": "https://host/openapi.json", "headers": {...}, "timeout": 5}``;
only ``url`` is required.

``describe()`` makes one ``GET url`` (the *sample*) and, when ``schema_url`` is
given, one ``GET schema_url`` (a JSON Schema or OpenAPI 3 document, see
:mod:`.api_schema`); without it the schema is inferred from the sample like a
JSON file (flattened, :mod:`.schema`). Timeouts and error statuses become
:class:`SourceUnreachable` / :class:`SourceNotFound`.

**What is digested**: the sample's records, flattened, as ``confide-rows/1``
canonical rows in the catalog's column order (keys outside the schema are left
out), with the schema line as leaf 0 (:class:`.digest.RowStreamDigest`). So the
digest pins the schema and the exact sample seen at registration; a live
endpoint will give a new digest when its data changes. ``row_count`` is the
number of records in the sample. ``details["schema_document_sha256"]`` is
SHA-256 of the schema document's canonical JSON text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyarrow as pa

from .api_schema import columns_from_schema_doc
from .base import Connector, DatasetProfile, select_columns
from .digest import ROWS_FORMAT, RowStreamDigest, json_text
from .errors import InvalidSpec, MalformedJSON, SchemaError, SourceNotFound, SourceUnreachable
from .json_file import flat_records, records_at
from .schema import TypeTracker, arrow_schema, to_batch

__all__ = ["ApiConnector"]


def _display(url: str) -> str:
    """Scheme, host and path only: query strings often carry tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


class ApiConnector(Connector):
    """JSON-over-HTTP endpoint (kind ``api``)."""

    type_name = "api"
    kind = "api"

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__(spec)
        self.url = self._checked_url(self._option("url", str, required=True))
        schema_url = self._option("schema_url", str)
        self.schema_url = self._checked_url(schema_url) if schema_url else None
        self.records = self._option("records", str)
        self.timeout = float(self._option("timeout", (int, float), 5.0))
        headers = self._option("headers", dict, {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise InvalidSpec("'headers' must map strings to strings", 'write e.g. {"Authorization": "..."}')
        self.headers: dict[str, str] = headers
        self._columns: list[dict[str, Any]] | None = None

    @staticmethod
    def _checked_url(url: str) -> str:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise InvalidSpec(f"{_display(url)!r} is not an http(s) URL", "write e.g. https://host/path")
        return url

    def _get_json(self, url: str) -> Any:
        shown = _display(url)
        try:
            resp = httpx.get(url, headers=self.headers, timeout=self.timeout, follow_redirects=True)
        except httpx.TimeoutException:
            raise SourceUnreachable(
                shown,
                f"no answer within {self.timeout:g} s",
                "check that the service is up, or raise 'timeout'",
            ) from None
        except httpx.HTTPError as exc:
            raise SourceUnreachable(
                shown,
                f"connection failed ({type(exc).__name__})",
                "check the URL and that the service is running",
            ) from None
        if resp.status_code == 404:
            raise SourceNotFound(f"endpoint {shown}", "check the path of the URL")
        if resp.status_code >= 400:
            raise SourceUnreachable(
                shown,
                f"HTTP {resp.status_code}",
                "check the credentials in 'headers' and the service's health",
            )
        try:
            return json.loads(resp.content)
        except json.JSONDecodeError as exc:
            raise MalformedJSON(
                shown,
                f"the response is not JSON: {exc.msg}",
                "point 'url' at a JSON endpoint",
                line=exc.lineno,
            ) from None
        except UnicodeDecodeError:
            raise MalformedJSON(
                shown, "the response is not UTF-8 JSON", "point 'url' at a JSON endpoint"
            ) from None

    def _sample(self) -> list[dict[str, Any]]:
        doc = self._get_json(self.url)
        return list(flat_records(records_at(doc, self.records, _display(self.url)), _display(self.url)))

    def _schema(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if self.schema_url is None:
            tracker = TypeTracker()
            for row in rows:
                tracker.observe(row.items())
            if not rows:
                raise SchemaError(
                    f"the sample from {_display(self.url)} holds no records, so no schema",
                    "give 'schema_url' (JSON Schema or OpenAPI) or fill the endpoint",
                )
            return tracker.columns(), {"schema_source": "sample"}
        doc = self._get_json(self.schema_url)
        source, cols = columns_from_schema_doc(doc, self.url, self.records)
        sha = hashlib.sha256(json_text(doc).encode()).hexdigest()
        return cols, {
            "schema_source": source,
            "schema_url": _display(self.schema_url),
            "schema_document_sha256": sha,
        }

    def describe(self) -> DatasetProfile:
        rows = self._sample()
        cols, details = self._schema(rows)
        names = [c["name"] for c in cols]
        digest = RowStreamDigest()
        digest.add_rows([row.get(n) for n in names] for row in rows)
        content = digest.finish([(c["name"], c["type"]) for c in cols])
        self._columns = cols
        details = {
            "endpoint": _display(self.url),
            "records": self.records,
            "row_count_is_sample": True,
            "digest_of": f"{ROWS_FORMAT} rows of the sample response",
            **details,
        }
        return DatasetProfile("api", cols, len(rows), content, details)

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """One fresh ``GET`` of the endpoint, as batches with the types of :meth:`describe`."""
        cols = self._columns if self._columns is not None else self.describe().schema
        names = select_columns([c["name"] for c in cols], columns)
        wanted = [c for n in names for c in cols if c["name"] == n]
        rows = self._sample()
        for start in range(0, len(rows), 10_000):
            yield to_batch(
                rows[start : start + 10_000], arrow_schema(wanted), {c["name"]: c["type"] for c in wanted}
            )
