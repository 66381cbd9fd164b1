"""SQL connector: a table or a query through a SQLAlchemy URL, streamed with server-side cursors.

Spec: ``{"type": "sql", "url": "sqlite:///x.db", "table": "t"}`` or
``{"type": "sql", "url": "postgresql+psycopg://…", "query": "select …"}``;
optional ``schema`` (database schema of the table) and ``timeout`` (seconds to
connect, default 10).

Rows are fetched ``yield_per`` 10,000 with ``stream_results`` (a named cursor on
PostgreSQL; SQLite cursors stream anyway), so memory is one batch.

* **table**: types and ``NOT NULL`` come from the reflected columns; a column
  whose declared type is unknown (SQLite without a type) gets its type from the
  values. Rows are read ``ORDER BY`` the primary key, or by every column when
  there is none, so the digest does not depend on the storage order.
* **query**: types come from the values in the same pass; the row order is the
  query's own — **write an ORDER BY** or the digest may differ between runs.

Content digest: :class:`.digest.RowStreamDigest` over the rows as the driver
returns them (``confide-rows/1``: canonical JSON lines, schema line as leaf 0).
A ``sqlite:///`` URL must name an existing file (SQLite would create an empty one).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from .base import Connector, DatasetProfile, select_columns
from .digest import ROWS_FORMAT, RowStreamDigest
from .errors import InvalidSpec, SchemaError, SourceNotFound, SourceUnreachable
from .schema import TypeTracker, arrow_schema, to_batch

__all__ = ["SqlConnector"]

BATCH_ROWS = 10_000
_TYPES: tuple[tuple[type[Any], str], ...] = (
    (sa.Boolean, "bool"),
    (sa.Integer, "int64"),
    (sa.Float, "float64"),
    (sa.Numeric, "decimal"),
    (sa.DateTime, "timestamp"),
    (sa.Date, "date"),
    (sa.Time, "time"),
    (sa.Interval, "duration"),
    (sa.LargeBinary, "binary"),
    (sa.JSON, "json"),
    (sa.ARRAY, "json"),
    (sa.String, "string"),
    (sa.Uuid, "string"),
)


def _declared_type(t: sa.types.TypeEngine[Any]) -> str | None:
    for cls, name in _TYPES:
        if isinstance(t, cls):
            return name
    return None


def _first_line(exc: sa_exc.DBAPIError | sa_exc.SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:200]


class SqlConnector(Connector):
    """A database table or query result (kind ``table``)."""

    type_name = "sql"

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__(spec)
        try:
            self.url = sa.make_url(self._option("url", str, required=True))
        except sa_exc.ArgumentError:
            raise InvalidSpec("'url' is not a SQLAlchemy URL", "write it like sqlite:///data.db") from None
        self.table, self.query = self._option("table", str), self._option("query", str)
        if (self.table is None) == (self.query is None):
            raise InvalidSpec(
                "a 'sql' source needs exactly one of 'table' and 'query'", "name a table or give a query"
            )
        db = self.url.database
        if self.url.get_backend_name() == "sqlite" and db and db != ":memory:" and not Path(db).is_file():
            raise SourceNotFound(
                f"SQLite database {db!r}", "check the path in the URL (sqlite:///path/to/file.db)"
            )
        self._timeout = float(self._option("timeout", (int, float), 10))
        self._columns: list[dict[str, Any]] | None = None

    @property
    def target(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def _engine(self) -> sa.Engine:
        backend = self.url.get_backend_name()
        args: dict[str, Any] = {}
        if backend == "sqlite":
            args["timeout"] = self._timeout
        elif backend in ("postgresql", "mysql", "mariadb"):
            args["connect_timeout"] = max(1, round(self._timeout))
        try:
            return sa.create_engine(self.url, poolclass=NullPool, connect_args=args)
        except (ImportError, sa_exc.NoSuchModuleError) as exc:
            raise InvalidSpec(
                f"no driver for {backend!r}: {exc}", "install the database driver package"
            ) from None

    def _connect(self, engine: sa.Engine) -> sa.Connection:
        try:
            return engine.connect()
        except sa_exc.SQLAlchemyError as exc:
            raise SourceUnreachable(
                self.target,
                _first_line(exc),
                "check that the database is running and the URL, user and password",
            ) from None

    def _statement(self, conn: sa.Connection, names: list[str] | None = None) -> tuple[Any, dict[str, Any]]:
        """The SELECT to run and what the table declares (types, nullability, order)."""
        if self.query is not None:
            return sa.text(self.query), {"types": {}, "nullable": None, "order_by": "as the query says"}
        try:
            table = sa.Table(
                self.table, sa.MetaData(), autoload_with=conn, schema=self._option("schema", str)
            )
        except sa_exc.NoSuchTableError:
            tables = sa.inspect(conn).get_table_names(schema=self._option("schema", str))
            raise SourceNotFound(
                f"table {self.table!r}", f"pick one of: {', '.join(tables) or '(none)'}"
            ) from None
        order = list(table.primary_key.columns) or list(table.columns)
        cols = [table.c[n] for n in select_columns([c.name for c in table.columns], names)]
        declared = {
            "types": {c.name: t for c in table.columns if (t := _declared_type(c.type))},
            "nullable": {c.name: bool(c.nullable) and not c.primary_key for c in table.columns},
            "order_by": [c.name for c in order],
        }
        return sa.select(*cols).order_by(*order), declared

    def _rows(self, names: list[str] | None = None) -> Iterator[tuple[list[str], dict[str, Any], list[Any]]]:
        """Yield ``(keys, declared, rows)`` per fetched batch; at least once, even for no rows."""
        engine = self._engine()
        try:
            with self._connect(engine) as conn:
                stmt, declared = self._statement(conn, names)
                try:
                    result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(stmt)
                    keys = list(result.keys())
                    yield keys, declared, []
                    for part in result.partitions(BATCH_ROWS):
                        yield keys, declared, [tuple(r) for r in part]
                except sa_exc.DBAPIError as exc:
                    raise InvalidSpec(
                        f"the query failed: {_first_line(exc)}", "check the SQL and the table"
                    ) from None
        finally:
            engine.dispose()

    def describe(self) -> DatasetProfile:
        digest, tracker = RowStreamDigest(), TypeTracker()
        declared: dict[str, Any] = {}
        watch: list[int] = []  # columns whose type or nullability must come from the values
        for i, (keys, declared, rows) in enumerate(self._rows()):
            if i == 0:
                if len(set(keys)) != len(keys):
                    raise SchemaError(f"the result has duplicate column names {keys}", "alias them with AS")
                tracker = TypeTracker(declared["types"])
                for k in keys:
                    tracker.add_column(k)
                known = declared["types"] if declared["nullable"] is not None else {}
                watch = [j for j, k in enumerate(keys) if k not in known]
            digest.add_rows(rows)
            for row in rows:
                tracker.observe([(keys[j], row[j]) for j in watch])
        self._columns = tracker.columns(declared["nullable"])
        content = digest.finish([(c["name"], c["type"]) for c in self._columns])
        details = {
            "database": self.target,
            "dialect": self.url.get_backend_name(),
            "table": self.table,
            "query": self.query,
            "order_by": declared["order_by"],
            "digest_of": f"{ROWS_FORMAT} rows",
        }
        return DatasetProfile("table", self._columns, tracker.rows, content, details)

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """Rows as Arrow batches with the types of :meth:`describe` (run first if it has not been)."""
        cols = self._columns if self._columns is not None else self.describe().schema
        names = select_columns([c["name"] for c in cols], columns)
        wanted = [c for n in names for c in cols if c["name"] == n]
        schema, types = arrow_schema(wanted), {c["name"]: c["type"] for c in wanted}
        for keys, _, rows in self._rows(names if self.table is not None else None):
            idx = [keys.index(n) for n in names]
            if rows:
                yield to_batch(
                    ({n: r[i] for n, i in zip(names, idx, strict=True)} for r in rows), schema, types
                )
