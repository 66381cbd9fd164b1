"""A whole federated run in-process: ``Coordinator`` and ``FlClient`` over an in-memory transport that
carries the same bytes the nodes carry (``pack_step``), with dropouts, refusals and replays."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from confide.crypto import Identity
from confide.engines.fl import TooManyDropouts, auc
from confide.engines.fl.federation import (
    Coordinator,
    FlClient,
    StepRefused,
    StepRequest,
    pack_step,
    session_id,
    unpack_step,
    vector_length,
)
from confide.engines.fl.job import FL_CODE_DIGEST, FlSpec, FlSpecError, Participant, model_digest, predict
from confide.engines.fl.secagg import SecAggConfig

COLUMNS = ["x1", "x2", "x3", "holdout", "label"]
ORGS = ["city-a", "city-b", "city-c", "city-d"]


def _task(**params: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"label": "label", "holdout": "holdout", "rounds": 4, "lr_milli": 300}
    inputs = [{"dataset": f"{o}/u/d", "grant": "0" * 64, "columns": COLUMNS} for o in ORGS]
    return {"engine": "fl", "code_digest": FL_CODE_DIGEST, "inputs": inputs, "params": base | params}


def _city(seed: int, shift: float, n: int = 1500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0 + 0.3 * seed % 2, size=(n, 3)) * [1.0, 10.0, 0.1]
    logit = 1.5 * (x[:, 0] - shift) + 0.2 * x[:, 1] - 4.0 * x[:, 2] - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    hold = (np.arange(n) % 5 == 0).astype(float)
    return np.column_stack([x, hold, y])


class MemoryTransport:
    """Routes packed step requests to in-process ``FlClient``s, as the node route does."""

    def __init__(self, clients: dict[str, FlClient], keys: dict[str, Identity], spec: FlSpec) -> None:
        self.clients, self.keys, self.spec = clients, keys, spec
        self.wire: list[bytes] = []
        self.fail: Callable[[str, StepRequest], None] = lambda org, req: None
        self.tamper: Callable[[str, StepRequest, bytes], bytes] = lambda org, req, a: a

    def step(self, org: str, request: bytes, max_answer: int) -> bytes:
        self.wire.append(request)
        req = unpack_step(request, 1 << 26)
        self.fail(org, req)
        client = self.clients[org]
        if req.step == 0:
            ids = req.clients
            config = SecAggConfig(
                session_id(req.run, req.phase, req.round),
                tuple(ids.values()),
                vector_length(self.spec, req.phase),
                client.threshold,
                identity_keys={i: self.keys[o].public_key for o, i in ids.items()},
            )
            answer = client.begin(req, config, ids[org], np.random.default_rng(req.round))
        else:
            answer = client.step(req)
        answer = self.tamper(org, req, answer)
        if len(answer) > max_answer:
            raise StepRefused("answer too large")
        self.wire.append(answer)
        return answer


def _setup(
    **params: Any,
) -> tuple[FlSpec, dict[str, np.ndarray], MemoryTransport, list[tuple[int, list[str], list[str], str]]]:
    spec = FlSpec.from_task(_task(**params))
    data = {o: _city(i, shift=0.3 * i) for i, o in enumerate(ORGS)}
    keys = {o: Identity.generate() for o in ORGS}
    clients = {
        o: FlClient("r" * 64, spec, Participant(spec, data[o], COLUMNS), keys[o], threshold=3) for o in ORGS
    }
    return spec, data, MemoryTransport(clients, keys, spec), []


def _coordinator(spec: FlSpec, transport: MemoryTransport, records: list[Any], **kw: Any) -> Coordinator:
    def record(rnd: int, orgs: list[str], dropped: list[str], digest: str) -> int:
        records.append((rnd, orgs, dropped, digest))
        return len(records)

    keys = {o: k.public_key for o, k in transport.keys.items()}
    nodes = {o: k.public_key.key_id() for o, k in transport.keys.items()}
    return Coordinator("r" * 64, spec, ORGS, nodes, keys, 3, transport, record, **kw)


def test_a_federated_run_learns_what_pooled_training_learns_and_records_every_round() -> None:
    spec, data, transport, records = _setup()
    out = _coordinator(spec, transport, records).train()
    assert [r[0] for r in records] == [0, 1, 2, 3, 4]
    assert all(r[1] == sorted(ORGS) and r[2] == [] for r in records)
    assert records[-1][3] == out.digest == model_digest(spec, out.std, out.params)
    pooled = np.vstack(list(data.values()))
    val = pooled[pooled[:, 3] == 1]
    scores = predict(spec, out.std, out.params, val[:, :3])
    assert abs(float(out.metrics["val_auc"]) - auc(scores, val[:, 4])) < 0.01  # histogram AUC ~ exact
    assert out.metrics["val_rows"] == len(val) and out.metrics["val_positive"] == int(val[:, 4].sum())
    assert auc(scores, val[:, 4]) > 0.8
    # the standardization is the pooled one (from the secure sums only)
    train = pooled[pooled[:, 3] == 0][:, :3]
    assert np.allclose(out.std.mean, train.mean(axis=0), atol=1e-3)
    assert np.allclose(out.std.scale, train.std(axis=0), rtol=1e-3)


def test_a_participant_that_drops_is_left_out_of_that_round_and_comes_back() -> None:
    spec, _, transport, records = _setup()

    def fail(org: str, req: StepRequest) -> None:
        if org == "city-b" and req.phase == "train" and req.round == 2 and req.step == 2:
            raise ConnectionError("node down")

    transport.fail = fail
    _coordinator(spec, transport, records).train()
    by_round = {r[0]: r for r in records}
    assert by_round[2][1] == ["city-a", "city-c", "city-d"] and by_round[2][2] == ["city-b"]
    assert by_round[3][1] == sorted(ORGS)


def test_too_many_dropouts_abort_the_run_and_record_nothing_for_that_round() -> None:
    spec, _, transport, records = _setup()

    def fail(org: str, req: StepRequest) -> None:
        if org in ("city-b", "city-c") and req.phase == "train" and req.round == 2:
            raise ConnectionError("node down")

    transport.fail = fail
    with pytest.raises(TooManyDropouts):
        _coordinator(spec, transport, records).train()
    assert [r[0] for r in records] == [0, 1]


def test_a_malformed_oversized_or_foreign_answer_drops_only_its_sender() -> None:
    spec, _, transport, records = _setup()
    said: list[str] = []

    def tamper(org: str, req: StepRequest, answer: bytes) -> bytes:
        if req.phase == "train" and req.step == 2 and req.round == 1 and org == "city-a":
            return answer + b"\0" * 8  # malformed: one coordinate too many
        if req.phase == "train" and req.step == 2 and req.round == 2 and org == "city-a":
            return answer * 40  # oversized
        if req.phase == "train" and req.step == 0 and req.round == 3 and org == "city-a":
            return b"\0" * 10  # garbage instead of keys
        return answer

    transport.tamper = tamper
    _coordinator(spec, transport, records, say=said.append).train()
    by_round = {r[0]: r for r in records}
    for rnd in (1, 2, 3):
        assert by_round[rnd][2] == ["city-a"], by_round[rnd]
    assert by_round[4][2] == []
    assert any("city-a" in s and "refused" in s for s in said)


def test_a_replayed_answer_from_an_old_round_is_refused() -> None:
    spec, _, transport, records = _setup()
    old: dict[tuple[str, int], bytes] = {}

    def tamper(org: str, req: StepRequest, answer: bytes) -> bytes:
        if req.phase == "train":
            old[(org, req.step)] = (
                old.get((org, req.step), answer) if req.round == 1 else old[(org, req.step)]
            )
            if org == "city-d" and req.round == 2 and req.step == 2:
                return old[(org, 2)]  # round 1's masked input, replayed in round 2
        return answer

    transport.tamper = tamper
    _coordinator(spec, transport, records).train()
    assert {r[0]: r for r in records}[2][2] == ["city-d"]


def test_a_participant_refuses_an_old_or_repeated_round_and_steps_out_of_order() -> None:
    spec, _, transport, records = _setup(rounds=2)
    _coordinator(spec, transport, records).train()
    client = transport.clients["city-a"]
    replay = unpack_step(transport.wire[0], 1 << 26)  # the set-up's first request
    assert replay.phase == "setup"
    with pytest.raises(StepRefused, match="already answered"):
        client.begin(replay, _config_for(transport, replay), 1, np.random.default_rng(0))
    with pytest.raises(StepRefused, match="no such session"):
        client.step(StepRequest(run="r" * 64, phase="train", round=1, step=1, body=b""))


def _config_for(transport: MemoryTransport, req: StepRequest) -> SecAggConfig:
    return SecAggConfig(
        session_id(req.run, req.phase, req.round),
        tuple(req.clients.values()),
        vector_length(transport.spec, req.phase),
        3,
        identity_keys={i: transport.keys[o].public_key for o, i in req.clients.items()},
    )


def test_no_raw_row_or_single_update_crosses_the_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    spec, data, transport, records = _setup(rounds=2)
    vectors: list[bytes] = []  # every participant's plain (encoded, unmasked) vector of every round
    for name in ("stats_vector", "train_vector", "eval_vector"):
        real = getattr(Participant, name)

        def spy(self: Participant, *a: Any, _real: Any = real) -> Any:
            v = _real(self, *a)
            vectors.append(v.tobytes())
            return v

        monkeypatch.setattr(Participant, name, spy)
    _coordinator(spec, transport, records).train()
    blob = b"".join(transport.wire)
    assert len(vectors) == 4 * 4  # set-up, two rounds, eval; four participants
    for v in vectors:
        assert v not in blob
        for at in (0, len(v) // 2, len(v) - 64):  # nor any 64-byte stretch of it
            assert v[at : at + 64] not in blob
    for table in data.values():
        for row in table[:50]:
            assert np.ascontiguousarray(row[:3], dtype="<f8").tobytes() not in blob


def test_differential_privacy_reports_its_budget_and_still_learns() -> None:
    from confide.engines.fl.job import dp_record

    spec, _, transport, records = _setup(dp_clip_milli=1000, dp_noise_milli=500, rounds=4)
    out = _coordinator(spec, transport, records).train()
    rec = dp_record(spec, 3)
    assert float(rec["dp_epsilon"]) > 0 and rec["dp_noise_multiplier"] in ("0.5", "0.5000")
    assert float(out.metrics["val_auc"]) > 0.7


def test_bad_specs_are_refused_with_the_param_named() -> None:
    with pytest.raises(FlSpecError, match=r"params\.label"):
        FlSpec.from_task(_task(label="nope"))
    with pytest.raises(FlSpecError, match=r"params\.model"):
        FlSpec.from_task(_task(model="transformer"))
    with pytest.raises(FlSpecError, match=r"params\.rounds"):
        FlSpec.from_task(_task(rounds=0))
    with pytest.raises(FlSpecError, match="not an fl task"):
        FlSpec.from_task(_task() | {"code_digest": hashlib.sha256(b"x").hexdigest()})
    spec = FlSpec.from_task(_task())
    bad = _city(0, 0.0)
    bad[3, 4] = 2.0
    with pytest.raises(FlSpecError, match="label"):
        Participant(spec, bad, COLUMNS)
    assert pack_step(unpack_step(pack_step(StepRequest("r", "train", 1, 1, b"xy")), 10)) == pack_step(
        StepRequest("r", "train", 1, 1, b"xy")
    )
    with pytest.raises(StepRefused):
        unpack_step(b"\0\0\0\x05{bad}", 10)
