"""Re-check a stored chain from genesis: ``confide ledger verify``.

Replays every stored block into a fresh in-memory replica, which re-verifies
the orderer signature, hash link, Merkle root and every tx signature, and
re-executes the contract. Then compares each stored tx outcome and the stored
state with the replay. Names the first bad block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ChainCorrupted
from ..genesis import Genesis
from ..store import ChainStore, StoredTx
from .replica import Replica
from .store import ChainDB

__all__ = ["VerifyReport", "verify_chain"]


@dataclass
class VerifyReport:
    ok: bool
    blocks: int = 0
    txs: int = 0
    state_root: str = ""
    first_bad_block: int | None = None
    problem: str = ""
    notes: list[str] = field(default_factory=list)


_COMPARED = ("tx_id", "type", "signer", "code", "reason", "events")


def _compare_rows(stored: list[StoredTx], replayed: list[StoredTx]) -> str:
    """Every stored tx column must equal what the replay wrote."""
    if len(stored) != len(replayed):
        return f"{len(stored)} tx rows stored, the replay has {len(replayed)}"
    for a, b in zip(stored, replayed, strict=True):
        for col in _COMPARED:
            if a[col] != b[col]:
                detail = f" ({a[col]!r} != {b[col]!r})" if col == "code" else ""
                return f"tx {a['idx']}: stored {col} differs from the replay{detail}"
    return ""


def verify_chain(
    db: ChainStore, genesis: Genesis, progress: Callable[[int, int], None] | None = None
) -> VerifyReport:
    heights = db.block_heights()
    report = VerifyReport(ok=False)
    if not heights:
        report.problem = "the store holds no blocks"
        return report
    replay = Replica(ChainDB(":memory:"), genesis)
    for expected, h in enumerate(heights):
        if h != expected:
            report.first_bad_block = expected
            report.problem = f"block {expected} is missing (next stored block is {h})"
            return report
        block = db.get_block(h)
        assert block is not None
        try:
            results = replay.apply_block(block)
        except ChainCorrupted as exc:
            report.first_bad_block = exc.height if exc.height == h else h
            report.problem = exc.reason
            return report
        if db.stored_hash(h) != block.block_hash(genesis.crypto):
            report.first_bad_block = h
            report.problem = "stored block hash is not the hash of the stored header"
            return report
        problem = _compare_rows(db.txs_in_block(h), replay.db.txs_in_block(h))
        if problem:
            report.first_bad_block = h
            report.problem = problem
            return report
        assert len(results) == len(block.txs)
        report.blocks += 1
        report.txs += len(block.txs)
        if progress is not None:
            progress(h + 1, len(heights))
    report.state_root = replay.state_root()
    stored_root = db.state_root(genesis.crypto)
    if stored_root != report.state_root:
        report.problem = (
            f"stored state root {stored_root[:16]} differs from the replay's {report.state_root[:16]}; "
            "the state table was edited outside the contract; restore the store from a verified replica"
        )
        return report
    report.ok = True
    return report
