"""Admission of one batch against a replica's state: the check every ordering path makes before a
tx may be ordered (the embedded orderer's open batch, a node appending to an evm/etcd/fabric log).

Each tx is executed by the platform contract on an overlay of the state (so later txs of the batch
see earlier ones' writes, and a tx id already in the batch is a replay), at the block time the
batch will carry: ``max(now, previous block's time)``. A refused tx changes nothing.
"""

from __future__ import annotations

from ..codes import Result
from ..contract import BlockInfo, Overlay
from ..contract.state import ReadCache
from ..tx import SignedTx
from .replica import Replica

__all__ = ["Admission"]


class Admission:
    def __init__(self, replica: Replica, now_ms: int) -> None:
        prev = replica.head_header
        assert prev is not None
        self.replica = replica
        self.overlay = Overlay(ReadCache(replica.state))
        self.info = BlockInfo(replica.height + 1, max(now_ms, prev.time))
        self.ids: list[str] = []  # the admitted txs, in order
        self.outcomes: list[tuple[str, str, Result]] = []  # (tx type, signer, result) of each
        self._ids: set[str] = set()

    def seen(self, tx_id: str) -> bool:
        return tx_id in self._ids or self.replica.db.has_tx(tx_id)

    def admit(self, stx: SignedTx) -> tuple[str, Result]:
        """Execute ``stx`` on the batch's overlay; kept when ``result.ok``."""
        tx_id, res = self.replica.contract.execute(self.overlay, stx, self.info, self.seen)
        if res.ok:
            self.ids.append(tx_id)
            self._ids.add(tx_id)
            self.outcomes.append((res.tx_type, res.signer, res))
        return tx_id, res
