"""An in-process secure-aggregation session driven round by round, with seeded randomness."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from confide.engines.fl.fixedpoint import FixedPoint, Ring
from confide.engines.fl.secagg import SecAggClient, SecAggConfig, SecAggServer

SESSION = bytes(range(16))


class Harness:
    def __init__(self, n: int = 5, params: int = 257, threshold: int = 0, seed: int = 0) -> None:
        self.config = SecAggConfig(SESSION, tuple(range(1, n + 1)), params, threshold)
        rng = np.random.default_rng(seed)
        self.codec = FixedPoint()
        self.floats = {u: rng.normal(0.0, 3.0, params) for u in self.config.clients}
        self.x = {u: self.codec.encode(v) for u, v in self.floats.items()}
        self.server = SecAggServer(self.config)
        self.clients = {u: SecAggClient(self.config, u, rng.bytes) for u in self.config.clients}
        self.sent: dict[int, dict[int, bytes]] = {}  # round -> client -> its message
        self.got: dict[int, dict[int, bytes]] = {}  # round -> client -> the server's message to it

    def round0(self, drop: Iterable[int] = ()) -> dict[int, bytes]:
        gone = set(drop)
        self.sent[0] = {u: c.advertise_keys() for u, c in self.clients.items() if u not in gone}
        for m in self.sent[0].values():
            self.server.receive_keys(m)
        self.got[1] = self.server.broadcast_keys()
        return self.got[1]

    def round1(self, drop: Iterable[int] = ()) -> dict[int, bytes]:
        gone = set(drop)
        self.sent[1] = {u: self.clients[u].share_keys(m) for u, m in self.got[1].items() if u not in gone}
        for m in self.sent[1].values():
            self.server.receive_shares(m)
        self.got[2] = self.server.forward_shares()
        return self.got[2]

    def round2(self, drop: Iterable[int] = ()) -> dict[int, bytes]:
        gone = set(drop)
        self.sent[2] = {
            u: self.clients[u].masked_input(m, self.x[u]) for u, m in self.got[2].items() if u not in gone
        }
        for m in self.sent[2].values():
            self.server.receive_masked_input(m)
        self.got[3] = self.server.request_unmasking()
        return self.got[3]

    def round3(self, drop: Iterable[int] = ()) -> Ring:
        gone = set(drop)
        self.sent[3] = {u: self.clients[u].unmask(m) for u, m in self.got[3].items() if u not in gone}
        for m in self.sent[3].values():
            self.server.receive_unmasking(m)
        return self.server.aggregate()

    def plain_sum(self, ids: Iterable[int]) -> Ring:
        total = np.zeros(self.config.params, dtype=np.uint64)
        for u in ids:
            total += self.x[u]
        return total
