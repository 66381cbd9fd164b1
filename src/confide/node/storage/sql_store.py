"""The org node's chain store on SQLAlchemy Core: SQLite by default, PostgreSQL by URL.

Same tables, columns and semantics as :class:`confide.ledger.embedded.ChainDB`:
a block, its tx outcomes and its state writes are committed in one database
transaction, a ``b""`` write deletes a key, and the state root is recomputed
from the stored rows. SQLite runs in WAL mode with ``synchronous=FULL``.

State keys sort in code-point order on both databases, because the state root
is a Merkle root over keys in that order: on PostgreSQL the key column is
``COLLATE "C"`` (byte order, which for UTF-8 is code-point order) whatever the
database's default collation, and the database must be UTF-8 encoded.

Thread-safe: each call checks a connection out of the engine's pool, so the
follower thread and API workers read in parallel; writes are serialized by one
lock. An in-memory SQLite database has one connection: there every call locks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import StaticPool

from ...crypto import Suite
from ...ledger.block import Block, BlockHeader
from ...ledger.codes import Result
from ...ledger.embedded.store import _blob, _events
from ...ledger.store import ChainStore, StoredTx
from ...ledger.tx import SignedTx
from . import _schema as db

__all__ = ["SqlChainStore"]

_PAGE = 1000  # rows per query when iterating all txs
_TX_FIELDS = ("height", "idx", "tx_id", "type", "signer", "code", "reason")  # then events, as in db.TX_ROW


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # the "begin" listener below opens every transaction itself
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    # pysqlite would BEGIN only before DML: reads would not be snapshots, DDL not transactional.
    # A writer takes the write lock up front (waiting up to busy_timeout), as ChainDB does.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("_write") else "BEGIN")


def _create_engine(url: str) -> tuple[sa.Engine, bool]:
    """(engine, whether it has a single shared connection)."""
    u = sa.make_url(url)
    backend = u.get_backend_name()
    if backend == "postgresql":
        return sa.create_engine(u, pool_pre_ping=True), False
    if backend != "sqlite":
        raise ValueError(f"unsupported database {backend!r}: use sqlite:///path or postgresql+psycopg://...")
    memory = u.database in (None, "", ":memory:")
    if not memory:
        Path(str(u.database)).parent.mkdir(parents=True, exist_ok=True)
    pool: dict[str, Any] = {"poolclass": StaticPool} if memory else {}
    engine = sa.create_engine(u, connect_args={"check_same_thread": False}, **pool)
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine, memory


def _check_postgres(conn: sa.Connection) -> None:
    """Refuse a database where state keys would not sort in code-point order."""
    encoding = conn.exec_driver_sql("SHOW server_encoding").scalar()
    if encoding != "UTF8":
        raise ValueError(f"the PostgreSQL database must be UTF8-encoded (it is {encoding})")
    collation = conn.exec_driver_sql(
        "SELECT collation_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'state' AND column_name = 'key'"
    ).scalar()
    if collation != "C":  # a table made by something else: keys would sort by the database's collation
        raise ValueError(f'state.key must be COLLATE "C" (it is {collation or "the default"})')


def _upsert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE, in the dialect's own syntax."""
    if not rows:
        return
    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["key"], set_={"value": stmt.excluded.value}), rows
    )


def _key_successor(prefix: str) -> str | None:
    """Least string above every key that starts with ``prefix`` (None: no such bound)."""
    nxt = ord(prefix[-1]) + 1
    if 0xD800 <= nxt < 0xE000:  # surrogates cannot be stored: skip to the next real code point
        nxt = 0xE000
    return None if nxt > 0x10FFFF else prefix[:-1] + chr(nxt)


def _stored_tx(r: Sequence[Any]) -> StoredTx:
    return StoredTx(zip(_TX_FIELDS, r[:7], strict=True), events=_events(r[7]))


class SqlChainStore(ChainStore):
    """Blocks + txs + state of one org node in the database at ``url``."""

    def __init__(self, url: str) -> None:
        self._engine, single = _create_engine(url)
        self._writer = self._engine.execution_options(_write=True)  # same pool
        # PostgreSQL reads are single statements (or, in _blocks, need none of the same snapshot):
        # autocommit spares the BEGIN and ROLLBACK round trips. SQLite reads stay snapshot transactions.
        pg_fast = {"isolation_level": "AUTOCOMMIT"} if self._engine.dialect.name == "postgresql" else {}
        self._reader = self._engine.execution_options(**pg_fast)
        self.dialect: str = self._engine.dialect.name
        self._lock = threading.RLock()
        self._shared: AbstractContextManager[Any] = self._lock if single else nullcontext()
        try:
            with self._write() as conn:
                db.metadata.create_all(conn)
                if self.dialect == "postgresql":
                    _check_postgres(conn)
        except BaseException:
            self._engine.dispose()
            raise

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._shared, self._reader.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self._lock, self._writer.begin() as conn:
            yield conn

    def close(self) -> None:
        with self._lock:
            self._engine.dispose()

    # -- meta ----------------------------------------------------------------
    def get_meta(self, key: str) -> bytes | None:
        with self._read() as conn:
            v = conn.execute(sa.select(db.meta.c.value).where(db.meta.c.key == key)).scalar()
        return None if v is None else _blob(v)

    def set_meta(self, key: str, value: bytes) -> None:
        with self._write() as conn:
            _upsert(conn, db.meta, [{"key": key, "value": value}])

    # -- blocks --------------------------------------------------------------
    def head(self) -> tuple[int, str, BlockHeader] | None:
        q = sa.select(db.blocks.c.height, db.blocks.c.hash, db.blocks.c.header)
        with self._read() as conn:
            row = conn.execute(q.order_by(db.blocks.c.height.desc()).limit(1)).first()
        return None if row is None else (int(row[0]), str(row[1]), BlockHeader.decode(_blob(row[2])))

    def get_block(self, height: int) -> Block | None:
        found = self._blocks(height - 1, 1)
        return found[0] if found else None

    def blocks_since(self, height: int, limit: int = 100) -> list[Block]:
        return self._blocks(height, limit)

    def _blocks(self, height: int, limit: int) -> list[Block]:
        """Blocks height+1, height+2, ... up to the first gap, at most ``limit``: two queries."""
        if limit <= 0:
            return []
        b, t = db.blocks.c, db.txs.c
        with self._read() as conn:
            q = sa.select(b.height, b.header, b.sig).where(b.height > height).order_by(b.height)
            run: list[tuple[int, bytes, bytes]] = []
            for r in conn.execute(q.limit(limit)):
                if r[0] != height + 1 + len(run):
                    break
                run.append((int(r[0]), _blob(r[1]), _blob(r[2])))
            if not run:
                return []
            q = sa.select(t.height, t.body, t.sig).where(t.height.between(height + 1, run[-1][0]))
            rows = conn.execute(q.order_by(t.height, t.idx)).all()
        by_height: dict[int, list[SignedTx]] = {h: [] for h, _, _ in run}
        for row in rows:
            by_height[int(row[0])].append(SignedTx(_blob(row[1]), _blob(row[2])))
        return [Block(header, sig, tuple(by_height[h])) for h, header, sig in run]

    def stored_hash(self, height: int) -> str | None:
        with self._read() as conn:
            v = conn.execute(sa.select(db.blocks.c.hash).where(db.blocks.c.height == height)).scalar()
        return None if v is None else str(v)

    def block_heights(self) -> list[int]:
        with self._read() as conn:
            heights = conn.execute(sa.select(db.blocks.c.height).order_by(db.blocks.c.height))
            return [int(row[0]) for row in heights]

    def append_block(
        self,
        block: Block,
        header: BlockHeader,
        suite: Suite,
        tx_ids: Sequence[str],
        results: Sequence[tuple[str, str, Result]],
        writes: dict[str, bytes],
    ) -> None:
        """Persist a verified block, its tx outcomes and its state writes in one transaction."""
        head = {
            "height": header.height,
            "hash": block.block_hash(suite),
            "header": block.header_bytes,
            "sig": block.signature,
        }
        rows = [
            db.tx_row(header.height, i, tx_ids[i], stx, *out)
            for i, (stx, out) in enumerate(zip(block.txs, results, strict=True))
        ]
        puts = [{"key": k, "value": v} for k, v in writes.items() if v]
        dels = [{"k": k} for k, v in writes.items() if not v]
        with self._write() as conn:
            conn.execute(db.blocks.insert(), head)
            if rows:
                conn.execute(db.txs.insert(), rows)
            _upsert(conn, db.state, puts)
            if dels:
                conn.execute(db.state.delete().where(db.state.c.key == sa.bindparam("k")), dels)

    # -- txs -----------------------------------------------------------------
    def has_tx(self, tx_id: str) -> bool:
        q = sa.select(sa.literal(1)).where(db.txs.c.tx_id == tx_id).limit(1)
        with self._read() as conn:
            return conn.execute(q).first() is not None

    def find_tx(self, tx_id: str) -> StoredTx | None:
        rows = self._tx_rows(db.txs.c.tx_id == tx_id, limit=1)
        return rows[0] if rows else None

    def txs_in_block(self, height: int) -> list[StoredTx]:
        return self._tx_rows(db.txs.c.height == height)

    def iter_txs(self) -> Iterator[StoredTx]:
        # Pages in (height, idx) order: no connection stays checked out while the caller works.
        h, i = -1, -1
        while True:
            after = sa.or_(db.txs.c.height > h, sa.and_(db.txs.c.height == h, db.txs.c.idx > i))
            q = sa.select(*db.TX_ROW).where(db.txs.c.height >= h, after)
            with self._read() as conn:
                page = conn.execute(q.order_by(db.txs.c.height, db.txs.c.idx).limit(_PAGE)).all()
            yield from (_stored_tx(r) for r in page)
            if len(page) < _PAGE:
                return
            h, i = page[-1][0], page[-1][1]

    def _tx_rows(self, where: sa.ColumnElement[bool], limit: int | None = None) -> list[StoredTx]:
        q = (
            sa.select(*db.TX_ROW, db.txs.c.body, db.txs.c.sig)
            .where(where)
            .order_by(db.txs.c.height, db.txs.c.idx)
        )
        with self._read() as conn:
            rows = conn.execute(q.limit(limit)).all()
        out = []
        for r in rows:
            row = _stored_tx(r)
            row["body"], row["sig"] = _blob(r[8]), _blob(r[9])
            out.append(row)
        return out

    # -- state ---------------------------------------------------------------
    def state_get(self, key: str) -> bytes | None:
        with self._read() as conn:
            v = conn.execute(sa.select(db.state.c.value).where(db.state.c.key == key)).scalar()
        return None if v is None else _blob(v)

    def state_keys(self, prefix: str) -> list[str]:
        q = sa.select(db.state.c.key).order_by(db.state.c.key)
        if prefix:
            q = q.where(db.state.c.key >= prefix)
            upper = _key_successor(prefix)
            if upper is not None:
                q = q.where(db.state.c.key < upper)
        with self._read() as conn:
            keys: list[str] = list(conn.execute(q).scalars())
        return [k for k in keys if k.startswith(prefix)]

    def state_items(self) -> Iterator[tuple[str, bytes]]:
        # One query, one snapshot: the state root must never mix two blocks' states.
        with self._read() as conn:
            rows = conn.execute(sa.select(db.state.c.key, db.state.c.value).order_by(db.state.c.key))
            items = [(str(r[0]), _blob(r[1])) for r in rows]
        yield from items
