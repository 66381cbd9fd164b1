"""What every outside ordering log (an EVM chain, an etcd cluster) hands to the deriver
(``ledger.derived``): entries in log order, grouped by batch, and the reader's cursor. Kept apart
from the logs' own modules so one backend never imports another's client libraries."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Cursor", "LogEntry"]


@dataclass(frozen=True)
class LogEntry:
    seq: int  # its number in the log (EVM) or in its batch (etcd)
    signed_tx: bytes
    block_number: int  # the batch it came in (EVM block number, etcd batch number)
    block_hash: str  # that batch's identity (EVM block hash, etcd mod revision)
    time_ms: int  # that batch's time
    log_index: int
    chain_tx: str  # the EVM transaction that carried it ("" elsewhere)


@dataclass(frozen=True)
class Cursor:
    """The last batch a reader read (-1: none yet), so a restarted reader resumes after it."""

    block_number: int = -1
    block_hash: str = ""
