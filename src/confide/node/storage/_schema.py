"""Tables of the SQLAlchemy chain store: the columns of ``ChainDB``'s SQLite schema, portably typed."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from ...ledger.codes import Result
from ...ledger.tx import SignedTx

__all__ = ["TX_ROW", "blocks", "meta", "metadata", "state", "tx_row", "txs"]

HEIGHT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid on SQLite
KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")  # code-point order on PostgreSQL too

metadata = sa.MetaData()
meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)
blocks = sa.Table(
    "blocks",
    metadata,
    sa.Column("height", HEIGHT, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.Text, nullable=False, unique=True),
    sa.Column("header", sa.LargeBinary, nullable=False),
    sa.Column("sig", sa.LargeBinary, nullable=False),
)
txs = sa.Table(
    "txs",
    metadata,
    sa.Column("height", HEIGHT, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tx_id", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("sig", sa.LargeBinary, nullable=False),
    sa.Column("code", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("signer", sa.Text, nullable=False),
    sa.Index("txs_by_id", "tx_id"),
    sqlite_with_rowid=False,
)
state = sa.Table(
    "state",
    metadata,
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)
TX_ROW = tuple(txs.c[n] for n in ("height", "idx", "tx_id", "type", "signer", "code", "reason", "events"))


def tx_row(
    height: int, idx: int, tx_id: str, stx: SignedTx, typ: str, signer: str, res: Result
) -> dict[str, Any]:
    """A ``txs`` row, its events as the compact sorted JSON ChainDB writes."""
    return {
        "height": height,
        "idx": idx,
        "tx_id": tx_id,
        "body": stx.body,
        "sig": stx.signature,
        "code": int(res.code),
        "reason": res.reason,
        "events": json.dumps(res.events, sort_keys=True, separators=(",", ":")),
        "type": typ,
        "signer": signer,
    }
