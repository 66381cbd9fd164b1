"""A whole federated training run over secure aggregation: the coordinator's loop and each
participant's state machine, over any transport that carries one request and its answer.

The coordinator drives; participants only answer. Each round is one secure-aggregation session
(``secagg``) of five steps. Step 0 carries the round's public inputs (phase, round, the client ids,
the global model and its standardization, and the ledger height at which that model's digest is
recorded); steps 1..4 carry the server's messages. A participant's answer is its client message.

Sessions follow one order: ``setup`` (round 0), ``train`` (rounds 1..R), ``eval`` (round R + 1).
A participant answers each session at most once and never goes back to an earlier one, so an old
round's request (or a replayed one) is refused; inside a session the ``SecAggClient`` refuses any
step out of order. Session ids are derived from (run, phase, round): a message of one round never
verifies in another.

The coordinator treats a participant that does not answer, refuses or answers with anything the
server refuses (malformed, oversized, replayed, another client's) as dropped for that session; the
session completes with the others when at least ``t`` remain, else ``TooManyDropouts`` and the run
stops there (nothing recorded for that round).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ...crypto import Identity, PublicKey
from . import wire
from .errors import FlError, SecAggError
from .fixedpoint import Ring
from .job import (
    EVAL_CODEC,
    STATS_CODEC,
    TRAIN_CODEC,
    FloatArray,
    FlSpec,
    Participant,
    Standardization,
    eval_length,
    initial_params,
    metrics_from,
    model_digest,
    standardization_from,
)
from .secagg import SecAggClient, SecAggConfig, SecAggServer

__all__ = [
    "PHASES",
    "Coordinator",
    "FlClient",
    "FlOutcome",
    "RoundRecord",
    "StepRefused",
    "StepRequest",
    "Transport",
    "pack_step",
    "session_id",
    "unpack_step",
    "vector_length",
]

PHASES = ("setup", "train", "eval")
MAX_HEADER = 1 << 20
_LEN = struct.Struct(">I")


class StepRefused(FlError):
    """A participant refuses a step (wrong order, replay, bad model); the message is for people."""


def session_id(run: str, phase: str, rnd: int) -> bytes:
    return hashlib.sha256(f"confide-fl/{run}/{phase}/{rnd}".encode()).digest()[: wire.SESSION_BYTES]


@dataclass(frozen=True)
class StepRequest:
    run: str
    phase: str
    round: int
    step: int
    body: bytes
    clients: dict[str, int] = field(default_factory=dict)  # step 0: org -> client id
    nodes: dict[str, str] = field(default_factory=dict)  # step 0: org -> node key id (signs its keys)
    model_height: int = (
        -1
    )  # step 0: the height to reach first (the run's start, then the last round's record)
    mean: list[float] | None = None
    scale: list[float] | None = None
    total_rows: int = 0

    @property
    def order(self) -> tuple[int, int]:
        return (PHASES.index(self.phase), self.round)

    def standardization(self) -> Standardization:
        if self.mean is None or self.scale is None:
            raise StepRefused("the request carries no standardization")
        return Standardization(np.array(self.mean), np.array(self.scale), self.total_rows)

    def params(self, n: int) -> FloatArray:
        if len(self.body) != 8 * n:
            raise StepRefused(f"the model must be {n} float64 parameters")
        out: FloatArray = np.frombuffer(self.body, dtype="<f8").astype(np.float64)
        if not np.isfinite(out).all():
            raise StepRefused("the model holds a non-finite parameter")
        return out


def pack_step(req: StepRequest) -> bytes:
    head = {k: v for k, v in req.__dict__.items() if k != "body"}
    raw = json.dumps(head, separators=(",", ":")).encode()
    return _LEN.pack(len(raw)) + raw + req.body


def unpack_step(data: bytes, max_body: int) -> StepRequest:
    try:
        (n,) = _LEN.unpack_from(data)
        if n > MAX_HEADER or len(data) - 4 - n > max_body:
            raise StepRefused("the step request is too large")
        head = json.loads(data[4 : 4 + n])
        req = StepRequest(body=bytes(data[4 + n :]), **head)
    except (struct.error, ValueError, TypeError) as exc:
        raise StepRefused(f"malformed step request: {exc}") from None
    if req.phase not in PHASES or not 0 <= req.step <= 4 or req.round < 0:
        raise StepRefused("malformed step request: phase, round or step out of range")
    return req


def vector_length(spec: FlSpec, phase: str) -> int:
    d = len(spec.features)
    return {"setup": 1 + 2 * d, "train": spec.n_params + 1, "eval": eval_length()}[phase]


# -- participant -----------------------------------------------------------------------------------
class FlClient:
    """One participant of one run: answers the coordinator's steps, in order, each once."""

    def __init__(self, run: str, spec: FlSpec, participant: Participant, identity: Identity, threshold: int):
        self.run, self.spec, self.data = run, spec, participant
        self.identity, self.threshold = identity, threshold
        self.last: tuple[int, int] = (-1, -1)  # the latest session begun
        self._client: SecAggClient | None = None
        self._vector: Ring | None = None
        self._step = 0

    def begin(self, req: StepRequest, config: SecAggConfig, my_id: int, rng: np.random.Generator) -> bytes:
        """Step 0: compute this round's vector and advertise keys. ``config`` and the model were
        checked by the caller against its ledger view (identity keys, model digest)."""
        if req.run != self.run or req.step != 0:
            raise StepRefused("not the first step of a session of this run")
        if req.order <= self.last:
            raise StepRefused(
                f"{req.phase} round {req.round}: this node already answered that round or a later one "
                f"(replayed or out of order)"
            )
        if config.session != session_id(self.run, req.phase, req.round):
            raise StepRefused("the session id is not this round's")
        if req.phase == "train" and not 1 <= req.round <= self.spec.rounds:
            raise StepRefused(f"train round {req.round} is outside 1..{self.spec.rounds}")
        if req.phase == "setup":
            vec = self.data.stats_vector()
        elif req.phase == "train":
            params = req.params(self.spec.n_params)
            vec = self.data.train_vector(params, req.standardization(), rng, self.spec.dp(self.threshold))
        else:
            vec = self.data.eval_vector(req.params(self.spec.n_params), req.standardization())
        self.last, self._vector, self._step = req.order, vec, 1
        self._client = SecAggClient(config, my_id, self.identity)
        return self._client.advertise_keys()

    def step(self, req: StepRequest) -> bytes:
        """Steps 1..4 of the session begun last."""
        if self._client is None or req.order != self.last or req.run != self.run:
            raise StepRefused(f"{req.phase} round {req.round}: no such session open on this node")
        if req.step != self._step:
            raise StepRefused(f"step {req.step}: expected step {self._step} (replayed or out of order)")
        c = self._client
        try:
            if req.step == 1:
                out = c.share_keys(req.body)
            elif req.step == 2:
                assert self._vector is not None
                out = c.masked_input(req.body, self._vector)
                self._vector = None  # the plain vector is not kept past its masked send
            elif req.step == 3:
                out = c.sign_survivors(req.body)
            else:
                out = c.unmask(req.body)
                self._client = None
        except SecAggError as exc:
            self._client, self._vector = None, None
            raise StepRefused(f"secure aggregation refused: {exc}") from None
        self._step += 1
        return out


# -- coordinator -----------------------------------------------------------------------------------
class Transport(Protocol):
    def step(self, org: str, request: bytes, max_answer: int) -> bytes:
        """Send one step request to ``org``'s node; its answer (raise anything if none)."""
        ...


@dataclass(frozen=True)
class RoundRecord:
    phase: str
    round: int
    participants: list[str]
    dropped: list[str]
    model_digest: str | None


@dataclass
class FlOutcome:
    std: Standardization
    params: FloatArray
    digest: str
    metrics: dict[str, str | int]
    eval_participants: list[str]
    rounds: list[RoundRecord] = field(default_factory=list)


Recorder = Callable[[int, list[str], list[str], str], int]  # round, participants, dropped, digest -> height


class Coordinator:
    """Drives the sessions of one run; learns only the sums. ``record`` puts a round on the ledger
    (and returns the height the participants wait for); ``eligible(org)`` is None or why that org
    may not take part in the next round (the coordinator's own grant check)."""

    def __init__(
        self,
        run: str,
        spec: FlSpec,
        orgs: Sequence[str],
        nodes: Mapping[str, str],
        identity_keys: Mapping[str, PublicKey],
        threshold: int,
        transport: Transport,
        record: Recorder,
        *,
        start_height: int = -1,
        eligible: Callable[[str], str | None] = lambda _: None,
        say: Callable[[str], None] = lambda _: None,
        progress: Callable[[dict[str, Any]], None] = lambda _: None,
    ) -> None:
        self.run, self.spec, self.threshold = run, spec, threshold
        self.ids = {org: i + 1 for i, org in enumerate(orgs)}
        self.nodes = dict(nodes)
        self.keys = {self.ids[o]: k for o, k in identity_keys.items()}
        self.transport, self.record, self.eligible = transport, record, eligible
        self.say, self.progress = say, progress
        self.start_height = start_height  # participants catch up to it first (they must see the run)
        self.rounds: list[RoundRecord] = []

    def _config(self, phase: str, rnd: int, length: int) -> SecAggConfig:
        return SecAggConfig(
            session_id(self.run, phase, rnd),
            tuple(self.ids.values()),
            length,
            self.threshold,
            identity_keys=self.keys,
        )

    def _fanout(self, requests: Mapping[str, bytes], max_answer: int) -> dict[str, bytes]:
        answers: dict[str, bytes] = {}
        if not requests:
            return answers
        with ThreadPoolExecutor(max_workers=min(8, len(requests)), thread_name_prefix="fl-step") as pool:
            futures = {
                org: pool.submit(self.transport.step, org, req, max_answer) for org, req in requests.items()
            }
            for org, fut in futures.items():
                try:
                    answers[org] = fut.result()
                except Exception as exc:  # any failure of one participant: dropped for this session
                    self.say(f"{org} dropped: {str(exc)[:300]}")
        return answers

    def _feed(self, org: str, answer: bytes, receive: Callable[[bytes], None], max_bytes: int) -> None:
        try:
            head, _ = wire.unpack(answer, max_bytes)
            if head.sender != self.ids[org]:
                raise SecAggError(f"the answer claims client {head.sender}, not {org}'s id")
            receive(answer)
        except SecAggError as exc:
            self.say(f"{org}'s answer refused, dropped for this round: {exc}")

    def secure_sum(
        self, phase: str, rnd: int, body0: bytes, std: Standardization | None, height: int
    ) -> tuple[Ring, list[str]]:
        """One secure-aggregation session; the sum and the orgs in it (``TooManyDropouts`` below t)."""
        length = vector_length(self.spec, phase)
        config = self._config(phase, rnd, length)
        server = SecAggServer(config)
        mx = config.max_message_bytes
        by_id = {i: o for o, i in self.ids.items()}
        live = []
        for org in self.ids:
            why = self.eligible(org)
            if why is None:
                live.append(org)
            else:
                self.say(f"{org} left out of {phase} round {rnd}: {why}")
        first = StepRequest(
            self.run,
            phase,
            rnd,
            step=0,
            body=body0,
            clients=dict(self.ids),
            nodes=self.nodes,
            model_height=height,
            mean=None if std is None else std.mean.tolist(),
            scale=None if std is None else std.scale.tolist(),
            total_rows=0 if std is None else std.total_rows,
        )
        answers = self._fanout({o: pack_step(first) for o in live}, mx)
        for org, a in answers.items():
            self._feed(org, a, server.receive_keys, mx)
        steps: list[tuple[Callable[[], dict[int, bytes]], Callable[[bytes], None]]] = [
            (server.broadcast_keys, server.receive_shares),
            (server.forward_shares, server.receive_masked_input),
            (server.announce_survivors, server.receive_survivor_signature),
            (server.request_unmasking, server.receive_unmasking),
        ]
        for step, (send, receive) in enumerate(steps, start=1):
            out = send()  # TooManyDropouts when fewer than t are left
            reqs = {by_id[u]: pack_step(StepRequest(self.run, phase, rnd, step, m)) for u, m in out.items()}
            for org, a in self._fanout(reqs, mx).items():
                self._feed(org, a, receive, mx)
        total = server.aggregate()
        return total, sorted(by_id[u] for u in server.survivors)

    def _recorded(self, phase: str, rnd: int, orgs: list[str], digest: str | None) -> int:
        dropped = sorted(set(self.ids) - set(orgs))
        self.rounds.append(RoundRecord(phase, rnd, orgs, dropped, digest))
        height = -1
        if digest is not None:
            height = self.record(rnd, orgs, dropped, digest)
        self.progress(
            {
                "phase": phase,
                "round": rnd,
                "rounds": self.spec.rounds,
                "participants": orgs,
                "dropped": dropped,
            }
        )
        return height

    def train(self) -> FlOutcome:
        spec, d = self.spec, len(self.spec.features)
        self.say(f"set-up: feature statistics over {len(self.ids)} participants (secure sum)")
        stats, orgs = self.secure_sum("setup", 0, b"", None, self.start_height)
        std = standardization_from(STATS_CODEC.decode(stats), d)
        params = initial_params(spec)
        digest = model_digest(spec, std, params)
        height = self._recorded("setup", 0, orgs, digest)
        for rnd in range(1, spec.rounds + 1):
            body = np.ascontiguousarray(params, dtype="<f8").tobytes()
            total, orgs = self.secure_sum("train", rnd, body, std, height)
            decoded = TRAIN_CODEC.decode(total)
            weight = float(decoded[-1])
            if not weight > 0:
                raise FlError(f"round {rnd}: the summed weight is {weight}")
            params = params + decoded[:-1] / weight
            digest = model_digest(spec, std, params)
            height = self._recorded("train", rnd, orgs, digest)
            self.say(f"round {rnd}/{spec.rounds}: {len(orgs)} participants, model {digest[:16]}")
        body = np.ascontiguousarray(params, dtype="<f8").tobytes()
        total, orgs = self.secure_sum("eval", spec.rounds + 1, body, std, height)
        metrics = metrics_from(EVAL_CODEC.decode(total))
        self._recorded("eval", spec.rounds + 1, orgs, None)
        return FlOutcome(std, params, digest, metrics, orgs, self.rounds)
