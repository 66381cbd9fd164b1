"""An in-process secure-aggregation session driven round by round, with seeded randomness."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from confide.crypto import Identity, PublicKey
from confide.engines.fl.fixedpoint import FixedPoint, Ring
from confide.engines.fl.secagg import SecAggClient, SecAggConfig, SecAggServer

SESSION = bytes(range(16))
_IDENTITIES: dict[int, Identity] = {}


def identity(u: int) -> Identity:
    """Client ``u``'s long-term identity, the same in every test (Ed25519 keygen is not seeded)."""
    if u not in _IDENTITIES:
        _IDENTITIES[u] = Identity.generate()
    return _IDENTITIES[u]


def identity_keys(ids: Iterable[int]) -> dict[int, PublicKey]:
    return {u: identity(u).public_key for u in ids}


def config(session: bytes, clients: tuple[int, ...], params: int, threshold: int = 0) -> SecAggConfig:
    return SecAggConfig(session, clients, params, threshold, identity_keys=identity_keys(clients))


class Harness:
    """Rounds 0..4 as the protocol numbers them. ``sent[r][u]``: client ``u``'s round-``r`` message;
    ``got[r][u]``: the server's message that opens round ``r`` for ``u`` (1: key list, 2: forwarded
    shares, 3: survivor set, 4: unmasking request)."""

    def __init__(self, n: int = 5, params: int = 257, threshold: int = 0, seed: int = 0) -> None:
        self.config = config(SESSION, tuple(range(1, n + 1)), params, threshold)
        rng = np.random.default_rng(seed)
        self.codec = FixedPoint()
        self.floats = {u: rng.normal(0.0, 3.0, params) for u in self.config.clients}
        self.x = {u: self.codec.encode(v) for u, v in self.floats.items()}
        self.server = SecAggServer(self.config)
        self.clients = {u: SecAggClient(self.config, u, identity(u), rng.bytes) for u in self.config.clients}
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
        self.got[3] = self.server.announce_survivors()
        return self.got[3]

    def round3(self, drop: Iterable[int] = ()) -> dict[int, bytes]:
        gone = set(drop)
        self.sent[3] = {u: self.clients[u].sign_survivors(m) for u, m in self.got[3].items() if u not in gone}
        for m in self.sent[3].values():
            self.server.receive_survivor_signature(m)
        self.got[4] = self.server.request_unmasking()
        return self.got[4]

    def round4(self, drop: Iterable[int] = ()) -> Ring:
        gone = set(drop)
        self.sent[4] = {u: self.clients[u].unmask(m) for u, m in self.got[4].items() if u not in gone}
        for m in self.sent[4].values():
            self.server.receive_unmasking(m)
        return self.server.aggregate()

    def through(self, last: int) -> None:
        """Run rounds 0..``last`` without dropouts."""
        for step in (self.round0, self.round1, self.round2, self.round3)[: last + 1]:
            step()

    def plain_sum(self, ids: Iterable[int]) -> Ring:
        total = np.zeros(self.config.params, dtype=np.uint64)
        for u in ids:
            total += self.x[u]
        return total
