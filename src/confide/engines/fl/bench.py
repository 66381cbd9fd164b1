"""``run_bench``: secure-aggregation rounds in-process against the same rounds without masks.

Both rounds start from the same float64 model updates (synthetic, drawn from ``seed``; drawing them
is not timed) and include, per client, the fixed-point encoding and the byte message to the server,
and at the server the parsing, the sum and the decoding. The secure round adds the five SecAgg
rounds: key generation, signing and agreement (each client checks ``n - 1`` signed key pairs),
Shamir sharing and sealing of ``s_u^SK`` and ``b_u``, the self mask and ``n - 1`` pairwise masks
per client, the survivor-set signatures (one per client, ``t - 1`` checks each), and the server's
reconstruction and unmasking. The clients' long-term identities exist before the round (not timed).
Crypto randomness comes from ``os.urandom``; ``seed`` fixes the data and which clients drop.

Everything runs in one thread, one party's call after another; a :class:`RoundClock` times each
call. ``repeat`` secure rounds (a fresh session each) and as many plain rounds run on the same
updates; each figure is the median over the repeats (one round's figures swing with where the
allocator finds memory). From the same calls come:

* ``secure_round_seconds``, ``plain_round_seconds``, ``ratio``: every party's calls added up — what
  the round costs all parties together (the definition the bench has always used);
* ``parallel_*``: the round with each client on its own org's node: per step the slowest client's
  call, plus every server call (the server handles its clients one after another). Message transit
  is counted in neither figure, for either round;
* ``mask_floor_seconds``, ``ratio_floor``: the mask streams the round has to expand
  (``mask_streams``), each timed here as one AES-128-CTR pass plus one in-place add
  (:func:`mask_seconds_per_stream`), and the ``ratio`` the secure round would have if that were its
  only extra work. Pairwise masking makes it grow with ``n`` per client while the plain round's work
  per client is constant.

Dropped clients (``round(dropout * clients)`` of them) drop after round 1 — they shared their keys
but never send a masked input — the costliest case for the server, which has to rebuild their
``s^SK`` and remove the pairwise masks they share with every survivor.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple, TypeVar

import numpy as np

from ...crypto import Identity
from . import wire
from .fixedpoint import FixedPoint, Ring
from .masks import apply_masks
from .secagg import SecAggClient, SecAggConfig, SecAggServer
from .wire import SERVER, Header, Kind

InputOf = Callable[[int], Ring]
T = TypeVar("T")


class RoundClock:
    """Times each party's calls in a round run in one thread (see the module docstring)."""

    def __init__(self) -> None:
        self.server_seconds = 0.0
        self.client_seconds: dict[str, dict[int, float]] = {}

    def client(self, step: str, u: int, call: Callable[[], T]) -> T:
        """Run client ``u``'s ``call`` of ``step``; its time counts toward that step's slowest client."""
        t0 = time.perf_counter()
        out = call()
        took = self.client_seconds.setdefault(step, {})
        took[u] = took.get(u, 0.0) + time.perf_counter() - t0
        return out

    def server(self, call: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        out = call()
        self.server_seconds += time.perf_counter() - t0
        return out

    @property
    def parallel_seconds(self) -> float:
        """Each step's slowest client plus all server work: the round with clients in parallel."""
        return self.server_seconds + sum(max(took.values()) for took in self.client_seconds.values())

    @property
    def serial_seconds(self) -> float:
        """All parties' work added up."""
        return self.server_seconds + sum(sum(took.values()) for took in self.client_seconds.values())


def identities_for(ids: tuple[int, ...]) -> dict[int, Identity]:
    """Fresh default-suite identities, one per client (a test or bench stand-in for the members')."""
    return {u: Identity.generate() for u in ids}


def run_local_round(
    config: SecAggConfig,
    identities: Mapping[int, Identity],
    input_of: InputOf,
    last_round: Mapping[int, int] | None = None,
    rng: Callable[[int], bytes] = os.urandom,
    clock: RoundClock | None = None,
) -> tuple[Ring, SecAggServer]:
    """All clients and the server of one session in-process, messages passed as bytes.

    ``identities[u]``: client ``u``'s identity (its public key is in ``config.identity_keys``).
    ``last_round[u]`` is the last round client ``u`` completes before it drops (-1: never
    advertises keys; 0: drops after advertising; 1: after sharing keys; 2: after its masked input,
    so it misses the survivor-set round (its input is still summed); 3: after signing the survivor
    set, so it misses unmasking); absent means it stays. ``input_of(u)`` gives the client's encoded
    vector when it reaches round 2 (its encoding counts as the client's work). Returns the server's
    sum and the server (for ``survivors``). Raises ``TooManyDropouts`` when fewer than ``t`` are
    left. ``clock`` times each party's calls.
    """
    last, c = dict(last_round or {}), clock or RoundClock()
    server = c.server(partial(SecAggServer, config))
    clients = {
        u: c.client("setup", u, partial(SecAggClient, config, u, identities[u], rng))
        for u in config.clients
        if last.get(u, 4) >= 0
    }
    for u, client in clients.items():
        keys = c.client("advertise", u, client.advertise_keys)
        c.server(partial(server.receive_keys, keys))
    for u, msg in c.server(server.broadcast_keys).items():
        if last.get(u, 4) >= 1:
            shares = c.client("share", u, partial(clients[u].share_keys, msg))
            c.server(partial(server.receive_shares, shares))
    for u, msg in c.server(server.forward_shares).items():
        if last.get(u, 4) >= 2:
            masked = c.client("mask", u, partial(_masked_input, clients[u], msg, input_of))
            c.server(partial(server.receive_masked_input, masked))
    for u, msg in c.server(server.announce_survivors).items():
        if last.get(u, 4) >= 3:
            sig = c.client("sign", u, partial(clients[u].sign_survivors, msg))
            c.server(partial(server.receive_survivor_signature, sig))
    for u, msg in c.server(server.request_unmasking).items():
        if last.get(u, 4) >= 4:
            unmasking = c.client("unmask", u, partial(clients[u].unmask, msg))
            c.server(partial(server.receive_unmasking, unmasking))
    return c.server(server.aggregate), server


def _masked_input(client: SecAggClient, forwarded: bytes, input_of: InputOf) -> bytes:
    return client.masked_input(forwarded, input_of(client.id))


def run_plain_round(
    config: SecAggConfig, input_of: InputOf, senders: tuple[int, ...], clock: RoundClock | None = None
) -> Ring:
    """The same data path without secure aggregation: each sender's encoded vector in one message,
    parsed and summed by the server."""
    c = clock or RoundClock()
    acc = c.server(partial(_zeros, config.params))
    for u in senders:
        msg = c.client("send", u, partial(_plain_message, config, input_of, u))
        c.server(partial(_plain_receive, config, acc, u, msg))
    return acc


def _zeros(n: int) -> Ring:
    return np.zeros(n, dtype=np.uint64)


def _plain_message(config: SecAggConfig, input_of: InputOf, u: int) -> bytes:
    return wire.pack(Header(Kind.MASKED_INPUT, u, SERVER, config.session), wire.pack_vector(input_of(u)))


def _plain_receive(config: SecAggConfig, acc: Ring, u: int, msg: bytes) -> None:
    head, body = wire.unpack(msg, config.max_message_bytes)
    if head.session != config.session or head.sender != u:
        raise AssertionError("plain round: misrouted message")
    np.add(acc, wire.unpack_vector(body, config.params), out=acc)


def mask_seconds_per_stream(params: int, streams: int = 10) -> float:
    """Seconds one mask stream of ``params`` words costs here (AES-128-CTR + in-place add), the median
    of three passes of ``streams`` masks: the floor the secure round's mask work cannot go under."""
    acc, keys = np.zeros(params, dtype=np.uint64), [(os.urandom(16), 1) for _ in range(streams)]
    took = []
    for _ in range(3):
        t0 = time.perf_counter()
        apply_masks(acc, keys)
        took.append((time.perf_counter() - t0) / streams)
    return statistics.median(took)


class _Pair(NamedTuple):
    """One secure round and the plain round over its survivors."""

    secure: RoundClock
    plain: RoundClock
    exact: bool  # their sums and means agree
    survivors: int


def _one(
    config: SecAggConfig,
    identities: Mapping[int, Identity],
    input_of: InputOf,
    dropped: tuple[int, ...],
    codec: FixedPoint,
) -> _Pair:
    """One secure round and the plain round over its survivors; whether their sums and means agree."""
    secure_clock, plain_clock = RoundClock(), RoundClock()
    secure, server = run_local_round(
        config, identities, input_of, {u: 1 for u in dropped}, clock=secure_clock
    )
    survivors = len(server.survivors)
    secure_mean = secure_clock.server(partial(codec.decode_mean, secure, survivors))
    plain = run_plain_round(config, input_of, server.survivors, plain_clock)
    plain_mean = plain_clock.server(partial(codec.decode_mean, plain, survivors))
    exact = bool(np.array_equal(secure, plain) and np.array_equal(secure_mean, plain_mean))
    return _Pair(secure_clock, plain_clock, exact, survivors)


def run_bench(
    clients: int,
    params: int,
    dropout: float,
    seed: int,
    repeat: int = 3,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Time ``repeat`` secure rounds and as many plain rounds on the same updates (medians reported);
    check every pair of sums agrees exactly."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError("dropout must be in [0, 1)")
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    rng = np.random.default_rng(seed)
    ids = tuple(range(1, clients + 1))
    codec = FixedPoint()
    codec.check_summands(clients)
    updates = {u: rng.normal(0.0, 0.05, params) for u in ids}
    n_drop = round(dropout * clients)
    dropped = tuple(sorted(int(u) for u in rng.choice(np.array(ids), size=n_drop, replace=False)))
    identities = identities_for(ids)
    keys = {u: i.public_key for u, i in identities.items()}

    def input_of(u: int) -> Ring:
        return codec.encode(updates[u])

    def config() -> SecAggConfig:  # a fresh session per round: a session's clients are single-use
        return SecAggConfig(session=rng.bytes(16), clients=ids, params=params, identity_keys=keys)

    sessions = [config() for _ in range(repeat + 1)]
    run_plain_round(sessions[0], input_of, ids[:2])  # warm the allocator for both rounds alike (not timed)
    runs = []
    for k, session in enumerate(sessions[1:], 1):
        runs.append(run := _one(session, identities, input_of, dropped, codec))
        secure_s, plain_s = run.secure.serial_seconds, run.plain.serial_seconds
        say(f"round {k}/{repeat}: secure {secure_s:.3f} s, plain {plain_s:.3f} s, sums equal: {run.exact}")
    survivors = runs[0].survivors

    secure_clocks, plain_clocks = [run.secure for run in runs], [run.plain for run in runs]
    serial_secure = statistics.median(c.serial_seconds for c in secure_clocks)
    serial_plain = statistics.median(c.serial_seconds for c in plain_clocks)
    parallel_secure = statistics.median(c.parallel_seconds for c in secure_clocks)
    parallel_plain = statistics.median(c.parallel_seconds for c in plain_clocks)
    # the mask streams the round expands: per survivor its self mask and one per other client of U2;
    # at the server the survivors' self masks and the masks they shared with the clients that dropped
    streams = survivors * (survivors + n_drop) + survivors + survivors * n_drop
    floor = streams * mask_seconds_per_stream(params)
    return {
        "clients": clients,
        "params": params,
        "dropout": dropout,
        "threshold": sessions[0].threshold,
        "dropped": len(dropped),
        "repeat": repeat,
        "secure_round_seconds": round(serial_secure, 4),
        "plain_round_seconds": round(serial_plain, 4),
        "ratio": round(serial_secure / max(serial_plain, 1e-9), 2),
        "parallel_secure_seconds": round(parallel_secure, 4),
        "parallel_plain_seconds": round(parallel_plain, 4),
        "parallel_ratio": round(parallel_secure / max(parallel_plain, 1e-9), 2),
        "mask_streams": streams,
        "mask_floor_seconds": round(floor, 4),
        "ratio_floor": round((serial_plain + floor) / max(serial_plain, 1e-9), 2),
        "exact": all(run.exact for run in runs),
    }
