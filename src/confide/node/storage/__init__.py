"""Node storage: the org node's chain store on SQLAlchemy, SQLite by default, PostgreSQL by URL.

    store = SqlChainStore("sqlite:///var/node/chain.sqlite")
    store = SqlChainStore("postgresql+psycopg://confide@db.example/confide")

It implements :class:`confide.ledger.store.ChainStore`, so a
:class:`confide.ledger.embedded.Replica` can verify and apply blocks into it.
"""

from .sql_store import SqlChainStore

__all__ = ["SqlChainStore"]
