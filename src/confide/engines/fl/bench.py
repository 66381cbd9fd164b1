"""``run_bench``: one secure-aggregation round in-process against the same round without masks.

Both rounds start from the same float64 model updates (synthetic, drawn from ``seed``; drawing them
is not timed) and include, per client, the fixed-point encoding and the byte message to the server,
and at the server the parsing, the sum and the decoding. The secure round adds the five SecAgg
rounds: key generation, signing and agreement (each client checks ``n - 1`` signed key pairs),
Shamir sharing and sealing of ``s_u^SK`` and ``b_u``, the self mask and ``n - 1`` pairwise masks
per client, the survivor-set signatures (one per client, ``t - 1`` checks each), and the server's
reconstruction and unmasking. The clients' long-term identities exist before the round (not timed).
Everything runs sequentially in one thread (the sum of all parties' work; in a deployment the
clients run in parallel). Crypto randomness comes from ``os.urandom``; ``seed`` fixes the data and
which clients drop.

Dropped clients (``round(dropout * clients)`` of them) drop after round 1 — they shared their keys
but never send a masked input — the costliest case for the server, which has to rebuild their
``s^SK`` and remove the pairwise masks they share with every survivor.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ...crypto import Identity
from . import wire
from .fixedpoint import FixedPoint, Ring
from .secagg import SecAggClient, SecAggConfig, SecAggServer
from .wire import SERVER, Header, Kind

InputOf = Callable[[int], Ring]


def identities_for(ids: tuple[int, ...]) -> dict[int, Identity]:
    """Fresh default-suite identities, one per client (a test or bench stand-in for the members')."""
    return {u: Identity.generate() for u in ids}


def run_local_round(
    config: SecAggConfig,
    identities: Mapping[int, Identity],
    input_of: InputOf,
    last_round: Mapping[int, int] | None = None,
    rng: Callable[[int], bytes] = os.urandom,
) -> tuple[Ring, SecAggServer]:
    """All clients and the server of one session in-process, messages passed as bytes.

    ``identities[u]``: client ``u``'s identity (its public key is in ``config.identity_keys``).
    ``last_round[u]`` is the last round client ``u`` completes before it drops (-1: never
    advertises keys; 0: drops after advertising; 1: after sharing keys; 2: after its masked input,
    so it misses the survivor-set round (its input is still summed); 3: after signing the survivor
    set, so it misses unmasking); absent means it stays. ``input_of(u)`` gives the client's encoded
    vector when it reaches round 2. Returns the server's sum and the server (for ``survivors``).
    Raises ``TooManyDropouts`` when fewer than ``t`` are left.
    """
    last = dict(last_round or {})
    server = SecAggServer(config)
    clients = {u: SecAggClient(config, u, identities[u], rng) for u in config.clients if last.get(u, 4) >= 0}
    for c in clients.values():
        server.receive_keys(c.advertise_keys())
    for u, msg in server.broadcast_keys().items():
        if last.get(u, 4) >= 1:
            server.receive_shares(clients[u].share_keys(msg))
    for u, msg in server.forward_shares().items():
        if last.get(u, 4) >= 2:
            server.receive_masked_input(clients[u].masked_input(msg, input_of(u)))
    for u, msg in server.announce_survivors().items():
        if last.get(u, 4) >= 3:
            server.receive_survivor_signature(clients[u].sign_survivors(msg))
    for u, msg in server.request_unmasking().items():
        if last.get(u, 4) >= 4:
            server.receive_unmasking(clients[u].unmask(msg))
    return server.aggregate(), server


def run_plain_round(config: SecAggConfig, input_of: InputOf, senders: tuple[int, ...]) -> Ring:
    """The same data path without secure aggregation: each sender's encoded vector in one message,
    parsed and summed by the server."""
    acc = np.zeros(config.params, dtype=np.uint64)
    for u in senders:
        msg = wire.pack(Header(Kind.MASKED_INPUT, u, SERVER, config.session), wire.pack_vector(input_of(u)))
        head, body = wire.unpack(msg, config.max_message_bytes)
        if head.session != config.session or head.sender != u:
            raise AssertionError("plain round: misrouted message")
        np.add(acc, wire.unpack_vector(body, config.params), out=acc)
    return acc


def run_bench(clients: int, params: int, dropout: float, seed: int) -> dict[str, Any]:
    """Time one secure round and the plain round on the same updates; check the sums agree exactly."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError("dropout must be in [0, 1)")
    rng = np.random.default_rng(seed)
    ids = tuple(range(1, clients + 1))
    codec = FixedPoint()
    codec.check_summands(clients)
    updates = {u: rng.normal(0.0, 0.05, params) for u in ids}
    n_drop = round(dropout * clients)
    dropped = tuple(sorted(int(u) for u in rng.choice(np.array(ids), size=n_drop, replace=False)))
    identities = identities_for(ids)
    config = SecAggConfig(
        session=rng.bytes(16),
        clients=ids,
        params=params,
        identity_keys={u: i.public_key for u, i in identities.items()},
    )

    def input_of(u: int) -> Ring:
        return codec.encode(updates[u])

    run_plain_round(config, input_of, ids[:2])  # warm the allocator for both rounds alike (not timed)
    t0 = time.perf_counter()
    secure, server = run_local_round(config, identities, input_of, {u: 1 for u in dropped})
    secure_mean = codec.decode_mean(secure, len(server.survivors))
    secure_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    plain = run_plain_round(config, input_of, server.survivors)
    plain_mean = codec.decode_mean(plain, len(server.survivors))
    plain_seconds = time.perf_counter() - t0

    exact = bool(np.array_equal(secure, plain) and np.array_equal(secure_mean, plain_mean))
    return {
        "clients": clients,
        "params": params,
        "dropout": dropout,
        "threshold": config.threshold,
        "dropped": len(dropped),
        "secure_round_seconds": round(secure_seconds, 4),
        "plain_round_seconds": round(plain_seconds, 4),
        "ratio": round(secure_seconds / max(plain_seconds, 1e-9), 2),
        "exact": exact,
    }
