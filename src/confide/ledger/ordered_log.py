"""What every outside ordering log (an EVM chain, an etcd cluster) hands to the deriver
(``ledger.derived``): entries in log order, grouped by batch, and the reader's cursor. Kept apart
from the logs' own modules so one backend never imports another's client libraries."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import LedgerError

__all__ = ["Cursor", "LogEntry", "log_tag", "split_batches"]


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


def log_tag(chain_id: str) -> bytes:
    """The tag binding a log (the EVM ``ConfideLog``, the Fabric chaincode, ChainMaker's contract) to
    one consortium: a node refuses a log whose tag is not its chain id's."""
    return hashlib.sha256(b"confide-log/" + chain_id.encode("utf-8")).digest()


def split_batches(entries: Sequence[bytes], max_count: int, max_bytes: int, where: str) -> list[list[bytes]]:
    """``entries`` in order, cut into batches of at most ``max_count`` entries and ``max_bytes``."""
    out: list[list[bytes]] = []
    cur: list[bytes] = []
    size = 0
    for e in entries:
        if len(e) > max_bytes:
            raise LedgerError(f"a signed tx of {len(e)} bytes is larger than {where} batch allows")
        if cur and (len(cur) >= max_count or size + len(e) > max_bytes):
            out.append(cur)
            cur, size = [], 0
        cur.append(e)
        size += len(e)
    if cur:
        out.append(cur)
    return out
