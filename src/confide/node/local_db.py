"""Node-local records that are not ledger state: where each dataset's data lives, and every use.

The ledger view (blocks, state) is rebuilt from the chain and never edited;
these tables are the node's own: the binding of a registered dataset version to
its source (a file under the data folder, a SQL URL, an API endpoint), and the
log of every decision the enforcer took.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

__all__ = ["LocalDB"]

_meta = MetaData()
sources = Table(
    "node_sources",
    _meta,
    Column("dataset", String(200), primary_key=True),
    Column("content_digest", String(64), primary_key=True),
    Column("spec", JSON, nullable=False),
    Column("profile", JSON, nullable=False),
    Column("bound_at", BigInteger, nullable=False),
)
uses = Table(
    "node_uses",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("dataset", String(200), nullable=False),
    Column("grant", String(64), nullable=False),
    Column("requester", String(64), nullable=False),
    Column("engine", String(16), nullable=False),
    Column("columns", JSON, nullable=False),
    Column("allowed", Integer, nullable=False),
    Column("reason", String(500), nullable=False),
)


nonces = Table(
    "node_nonces",
    _meta,
    Column("nonce", String(32), primary_key=True),
    Column("seen_at", BigInteger, nullable=False),
)

# Every input this node sent to an enclave: one row per (run, dataset), claimed before the first
# frame leaves, so a replayed request never sends the data twice.
transfers = Table(
    "node_tee_transfers",
    _meta,
    Column("run", String(64), primary_key=True),
    Column("dataset", String(200), primary_key=True),
    Column("quote_digest", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("input_digest", String(64), nullable=True),
    Column("frames", Integer, nullable=False),
    Column("at", BigInteger, nullable=False),
)

# Every PSI run this node took part in: one row per (run, dataset), claimed before the engine starts
# (a replayed request never runs twice); ``ids`` holds the intersection where this node learns it
# (its own IDs, kept for a later step), ``None`` elsewhere.
psi_runs = Table(
    "node_psi_runs",
    _meta,
    Column("run", String(64), primary_key=True),
    Column("dataset", String(200), primary_key=True),
    Column("session", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("intersection_size", Integer, nullable=True),
    Column("output_digest", String(64), nullable=True),
    Column("ids", JSON, nullable=True),
    Column("reason", String(500), nullable=False),
    Column("at", BigInteger, nullable=False),
)

# Every MPC run this node took part in (as a compute party or as the dealer): one row per run, claimed
# before the protocol starts. ``share`` is this party's output share message (``reveal_message``
# bytes): it leaves the node only once the ledger shows the run's release approved.
mpc_runs = Table(
    "node_mpc_runs",
    _meta,
    Column("run", String(64), primary_key=True),
    Column("session", String(64), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("party", Integer, nullable=False),
    Column("dataset", String(200), nullable=True),
    Column("status", String(16), nullable=False),
    Column("spec", JSON, nullable=True),
    Column("share", LargeBinary, nullable=True),
    Column("share_digest", String(64), nullable=True),
    Column("reason", String(500), nullable=False),
    Column("at", BigInteger, nullable=False),
)

# Every FL run this node took part in, as its coordinator or as a participant: one row per run, claimed
# before the first round (a run never starts twice on a node). ``progress``: the rounds done so far;
# ``model``: the coordinator's final model (spec, standardization, parameters), which leaves the node
# only once the ledger shows its release approved by every participant.
fl_runs = Table(
    "node_fl_runs",
    _meta,
    Column("run", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("progress", JSON, nullable=False),
    Column("model", JSON, nullable=True),
    Column("model_digest", String(64), nullable=True),
    Column("reason", String(500), nullable=False),
    Column("at", BigInteger, nullable=False),
)


class LocalDB:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, future=True)
        _meta.create_all(self.engine)
        self._lock = threading.Lock()

    def bind_source(
        self, dataset: str, content_digest: str, spec: dict[str, Any], profile: dict[str, Any]
    ) -> None:
        row = {"dataset": dataset, "content_digest": content_digest, "spec": spec, "profile": profile}
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                sources.delete().where(
                    sources.c.dataset == dataset, sources.c.content_digest == content_digest
                )
            )
            conn.execute(insert(sources).values(**row, bound_at=int(time.time() * 1000)))

    def source_for(self, dataset: str, content_digest: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(sources.c.spec).where(
                    sources.c.dataset == dataset, sources.c.content_digest == content_digest
                )
            ).first()
        return None if r is None else dict(r[0])

    def record_use(self, **row: Any) -> None:
        row = {**row, "columns": json.loads(json.dumps(row["columns"])), "at": int(time.time() * 1000)}
        with self._lock, self.engine.begin() as conn:
            conn.execute(insert(uses).values(**row))

    def uses(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(uses).order_by(uses.c.id))]

    def _insert_once(self, table: Table, row: dict[str, Any]) -> bool:
        """Insert ``row`` (stamped now); ``False`` if its key is taken (claimed before: never twice)."""
        with self._lock, self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(insert(table).values(**row, at=int(time.time() * 1000)))
            except IntegrityError:
                return False
        return True

    def claim_transfer(self, run: str, dataset: str, quote_digest: str) -> bool:
        """Record that this input is being sent; ``False`` if it was claimed before (never send twice)."""
        row = {"run": run, "dataset": dataset, "quote_digest": quote_digest, "status": "sending", "frames": 0}
        return self._insert_once(transfers, row)

    def finish_transfer(
        self, run: str, dataset: str, status: str, input_digest: str | None, frames: int
    ) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                transfers.update()
                .where(transfers.c.run == run, transfers.c.dataset == dataset)
                .values(status=status, input_digest=input_digest, frames=frames, at=int(time.time() * 1000))
            )

    def transfers(self, run: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(transfers).where(transfers.c.run == run).order_by(transfers.c.dataset))
            return [dict(r._mapping) for r in rows]

    def claim_psi(self, run: str, dataset: str, session: str, role: str) -> bool:
        """Record that this dataset takes part in a PSI run; ``False`` if it did before."""
        row = {"run": run, "dataset": dataset, "session": session, "role": role, "status": "running"}
        return self._insert_once(psi_runs, row | {"reason": ""})

    def finish_psi(
        self,
        run: str,
        dataset: str,
        status: str,
        *,
        size: int | None = None,
        output_digest: str | None = None,
        ids: list[str] | None = None,
        reason: str = "",
    ) -> None:
        values = {"status": status, "intersection_size": size, "output_digest": output_digest, "ids": ids}
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                psi_runs.update()
                .where(psi_runs.c.run == run, psi_runs.c.dataset == dataset)
                .values(**values, reason=reason[:500], at=int(time.time() * 1000))
            )

    def psi_runs(self, run: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(psi_runs).where(psi_runs.c.run == run).order_by(psi_runs.c.dataset))
            return [dict(r._mapping) for r in rows]

    def claim_mpc(self, run: str, session: str, role: str, party: int, dataset: str | None) -> bool:
        """Record that this node takes part in an MPC run; ``False`` if it did before."""
        row = {"run": run, "session": session, "role": role, "party": party, "dataset": dataset}
        return self._insert_once(mpc_runs, row | {"status": "running", "reason": ""})

    def finish_mpc(
        self,
        run: str,
        status: str,
        *,
        spec: dict[str, Any] | None = None,
        share: bytes | None = None,
        share_digest: str | None = None,
        reason: str = "",
    ) -> None:
        values = {"status": status, "spec": spec, "share": share, "share_digest": share_digest}
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                mpc_runs.update()
                .where(mpc_runs.c.run == run)
                .values(**values, reason=reason[:500], at=int(time.time() * 1000))
            )

    def mpc_runs_holding_shares(self) -> list[str]:
        """Runs for which this node still keeps an output share (until released, failed or cancelled)."""
        q = select(mpc_runs.c.run).where(mpc_runs.c.share.is_not(None))
        with self.engine.connect() as conn:
            return [str(r[0]) for r in conn.execute(q)]

    def mpc_run(self, run: str | None = None, *, session: str | None = None) -> dict[str, Any] | None:
        """This node's record of an MPC run, by run id or by session id."""
        where = mpc_runs.c.run == run if session is None else mpc_runs.c.session == session
        with self.engine.connect() as conn:
            r = conn.execute(select(mpc_runs).where(where)).first()
        return None if r is None else dict(r._mapping)

    def claim_fl(self, run: str, role: str) -> bool:
        """Record that this node takes part in an FL run; ``False`` if it did before."""
        return self._insert_once(
            fl_runs, {"run": run, "role": role, "status": "running", "progress": {}, "reason": ""}
        )

    def update_fl(self, run: str, **values: Any) -> None:
        if "reason" in values:
            values["reason"] = str(values["reason"])[:500]
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                fl_runs.update().where(fl_runs.c.run == run).values(**values, at=int(time.time() * 1000))
            )

    def fl_run(self, run: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(fl_runs).where(fl_runs.c.run == run)).first()
        return None if r is None else dict(r._mapping)

    def check_and_add(self, nonce: str, now: int, window_s: int = 300) -> bool:
        """Request-nonce replay guard that survives restarts (a ``NonceStore``)."""
        with self._lock, self.engine.begin() as conn:
            if int(nonce[:4], 16) % 256 == 0:  # prune now and then, not on every request
                conn.execute(nonces.delete().where(nonces.c.seen_at < now - 2 * window_s))
            try:
                with conn.begin_nested():
                    conn.execute(insert(nonces).values(nonce=nonce, seen_at=now))
            except IntegrityError:
                return False
        return True

    def close(self) -> None:
        self.engine.dispose()
