"""Data connectors: profile a source (schema, row count, content digest) and stream it to engines.

The front door::

    from confide.node.connectors import open_connector, synthetic_preview

    conn = open_connector({"type": "csv", "path": "filings.csv"})
    profile = conn.describe()          # one pass; what the dataset.register tx needs
    for batch in conn.batches(["credit_code", "revenue"]):
        ...                            # pyarrow.RecordBatch, for an engine
    synthetic_preview(profile.schema)  # made-up rows from the schema, never real ones

Source types: ``csv``, ``parquet``, ``json``, ``jsonl``, ``sql``, ``files``,
``api`` (see each module's docstring for its spec keys). Digests:
:mod:`.digest`; type names and JSON flattening: :mod:`.schema`.
"""

from .base import Connector, DatasetProfile, FileEntry, connector_names, open_connector
from .digest import file_digest
from .errors import (
    ConnectorError,
    InvalidSpec,
    MalformedCSV,
    MalformedJSON,
    MalformedParquet,
    MalformedSource,
    SchemaError,
    SourceNotFound,
    SourceUnreachable,
    UnknownConnector,
    UnsupportedOperation,
)
from .preview import synthetic_preview
from .schema import TYPE_NAMES

__all__ = [
    "TYPE_NAMES",
    "Connector",
    "ConnectorError",
    "DatasetProfile",
    "FileEntry",
    "InvalidSpec",
    "MalformedCSV",
    "MalformedJSON",
    "MalformedParquet",
    "MalformedSource",
    "SchemaError",
    "SourceNotFound",
    "SourceUnreachable",
    "UnknownConnector",
    "UnsupportedOperation",
    "connector_names",
    "file_digest",
    "open_connector",
    "synthetic_preview",
]
