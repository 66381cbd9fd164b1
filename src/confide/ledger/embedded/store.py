"""SQLite block and state store: one file per node, one DB transaction per block.

A block, its txs with their result codes, and the state writes they caused are
committed in a single SQLite transaction (WAL, ``synchronous=FULL``), so a
crash leaves either the whole block or none of it, and nothing committed is
lost. The state root is recomputed from the stored
keys and values on demand, so a hand-edited state row cannot hide.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ...crypto import Suite
from ..block import Block, BlockHeader
from ..codes import Result
from ..contract.state import StateView
from ..store import ChainStore, StoredTx
from ..tx import SignedTx

__all__ = ["ChainDB", "DBState", "StoredTx"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE,
    header BLOB NOT NULL, sig BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    height INTEGER NOT NULL, idx INTEGER NOT NULL, tx_id TEXT NOT NULL,
    body BLOB NOT NULL, sig BLOB NOT NULL, code INTEGER NOT NULL, reason TEXT NOT NULL,
    events TEXT NOT NULL, type TEXT NOT NULL, signer TEXT NOT NULL,
    PRIMARY KEY (height, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS txs_by_id ON txs (tx_id);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
"""


def _blob(v: bytes | str) -> bytes:
    """Column value as bytes; a TEXT value (e.g. written by the sqlite3 shell) is taken as UTF-8."""
    return v.encode("utf-8", "surrogatepass") if isinstance(v, str) else bytes(v)


def _events(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return {"unparseable": _blob(raw).hex()}  # tampered row: verify reports the mismatch


class ChainDB(ChainStore):
    """Blocks + txs + state of one node. Thread-safe through one lock."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        if readonly:
            uri = f"file:{Path(self.path).resolve()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        else:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        self._db.execute("PRAGMA busy_timeout=10000")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- meta ----------------------------------------------------------------
    def get_meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else _blob(row[0])

    def set_meta(self, key: str, value: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- blocks --------------------------------------------------------------
    def head(self) -> tuple[int, str, BlockHeader] | None:
        row = self._db.execute(
            "SELECT height, hash, header FROM blocks ORDER BY height DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return row[0], row[1], BlockHeader.decode(bytes(row[2]))

    def get_block(self, height: int) -> Block | None:
        with self._lock:
            row = self._db.execute("SELECT header, sig FROM blocks WHERE height=?", (height,)).fetchone()
            if row is None:
                return None
            txs = self._db.execute(
                "SELECT body, sig FROM txs WHERE height=? ORDER BY idx", (height,)
            ).fetchall()
        return Block(_blob(row[0]), _blob(row[1]), tuple(SignedTx(_blob(b), _blob(s)) for b, s in txs))

    def stored_hash(self, height: int) -> str | None:
        row = self._db.execute("SELECT hash FROM blocks WHERE height=?", (height,)).fetchone()
        return None if row is None else str(row[0])

    def block_heights(self) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT height FROM blocks ORDER BY height")]

    def append_block(
        self,
        block: Block,
        header: BlockHeader,
        suite: Suite,
        tx_ids: Sequence[str],
        results: Sequence[tuple[str, str, Result]],
        writes: dict[str, bytes],
    ) -> None:
        """Persist a verified block, its tx outcomes and its state writes atomically.

        ``results`` holds (type, signer, result) per tx, in block order.
        """
        rows = [
            (
                header.height,
                i,
                tx_ids[i],
                stx.body,
                stx.signature,
                int(res.code),
                res.reason,
                json.dumps(res.events, sort_keys=True, separators=(",", ":")),
                typ,
                signer,
            )
            for i, (stx, (typ, signer, res)) in enumerate(zip(block.txs, results, strict=True))
        ]
        puts = [(k, v) for k, v in writes.items() if v]
        dels = [(k,) for k, v in writes.items() if not v]
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO blocks VALUES (?, ?, ?, ?)",
                    (header.height, block.block_hash(suite), block.header_bytes, block.signature),
                )
                db.executemany("INSERT INTO txs VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
                db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)", puts)
                db.executemany("DELETE FROM state WHERE key=?", dels)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # -- txs -----------------------------------------------------------------
    def has_tx(self, tx_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM txs WHERE tx_id=? LIMIT 1", (tx_id,)).fetchone() is not None

    def find_tx(self, tx_id: str) -> StoredTx | None:
        rows = self._tx_rows("WHERE tx_id=? ORDER BY height, idx LIMIT 1", (tx_id,))
        return rows[0] if rows else None

    def txs_in_block(self, height: int) -> list[StoredTx]:
        return self._tx_rows("WHERE height=? ORDER BY idx", (height,))

    def iter_txs(self) -> Iterator[StoredTx]:
        cur = self._db.execute(
            "SELECT height, idx, tx_id, type, signer, code, reason, events FROM txs ORDER BY height, idx"
        )
        for r in cur:
            yield self._row(r)

    def _tx_rows(self, where: str, args: tuple[Any, ...]) -> list[StoredTx]:
        sql = "SELECT height, idx, tx_id, type, signer, code, reason, events, body, sig FROM txs " + where
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        out = []
        for r in rows:
            row = self._row(r)
            row["body"], row["sig"] = _blob(r[8]), _blob(r[9])
            out.append(row)
        return out

    @staticmethod
    def _row(r: Sequence[Any]) -> StoredTx:
        return StoredTx(
            height=r[0],
            idx=r[1],
            tx_id=r[2],
            type=r[3],
            signer=r[4],
            code=r[5],
            reason=r[6],
            events=_events(r[7]),
        )

    # -- state ---------------------------------------------------------------
    def state_get(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return None if row is None else _blob(row[0])

    def state_keys(self, prefix: str) -> list[str]:
        if not prefix:
            return [r[0] for r in self._db.execute("SELECT key FROM state ORDER BY key")]
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        cur = self._db.execute(
            "SELECT key FROM state WHERE key >= ? AND key < ? ORDER BY key", (prefix, upper)
        )
        return [r[0] for r in cur]

    def state_items(self) -> Iterator[tuple[str, bytes]]:
        for k, v in self._db.execute("SELECT key, value FROM state ORDER BY key"):
            yield k, _blob(v)

    def state_root(self, suite: Suite) -> str:
        with self._lock:
            return super().state_root(suite)


class DBState(StateView):
    """Committed contract state read straight from a :class:`ChainStore`."""

    def __init__(self, db: ChainStore) -> None:
        self.db = db

    def get_raw(self, key: str) -> bytes | None:
        return self.db.state_get(key)

    def keys_with_prefix(self, prefix: str) -> Iterator[str]:
        return iter(self.db.state_keys(prefix))
