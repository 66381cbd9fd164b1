"""The contract's fl records: task shape, rounds in order by the coordinator only, the final model and
its metrics on the release, and a run.finish bound to that final model. Every refusal leaves the
state root and height unchanged (``Consortium.refused``)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from confide.crypto import Identity
from confide.ledger import Code
from factories import SCHEMA, Consortium, digest

UNITS = {"bank": "credit", "tax": "collection", "power": "service"}
CODE = "confide-fl/fedavg-secagg/v1"
COLS = ["credit_code", "revenue"]


def _code(exc: Exception) -> Code:
    return Code(exc.code)  # type: ignore[attr-defined]


@pytest.fixture
def c() -> Consortium:
    c = Consortium.create()
    c.coordinator = Identity.generate()  # type: ignore[attr-defined]
    c.send(
        c.admins["bank"],
        "member.add",
        {"public_key": c.coordinator.public_hex, "name": "n", "roles": ["node"]},
    )  # type: ignore[attr-defined]
    c.tax_node = Identity.generate()  # type: ignore[attr-defined]
    c.send(
        c.admins["tax"], "member.add", {"public_key": c.tax_node.public_hex, "name": "n", "roles": ["node"]}
    )  # type: ignore[attr-defined]
    return c


def _grants(c: Consortium, engines: tuple[str, ...] = ("fl",)) -> dict[str, tuple[str, str]]:
    out = {}
    for org, unit in UNITS.items():
        payload = {
            "unit": unit,
            "name": "records",
            "title": "Records",
            "kind": "table",
            "schema": SCHEMA,
            "row_count": 100,
            "content_digest": digest(f"{org} v1"),
        }
        if not any(d["id"] == f"{org}/{unit}/records" for d in _datasets(c)):
            c.send(c.owners[org], "dataset.register", payload)
        ds = f"{org}/{unit}/records"
        app = c.apply(ds, engines=list(engines), max_uses=5)
        c.send(c.owners[org], "application.approve", {"application": app, "level": "unit"})
        out[org] = (ds, app)
    return out


def _datasets(c: Consortium) -> list[dict[str, Any]]:
    return [d for o in c.query("catalog") for u in o["units"] for d in u["datasets"]]


def _task(grants: dict[str, tuple[str, str]], **params: object) -> dict[str, Any]:
    return {
        "engine": "fl",
        "inputs": [{"dataset": ds, "grant": app, "columns": COLS} for ds, app in grants.values()],
        "code": CODE,
        "code_digest": hashlib.sha256(CODE.encode()).hexdigest(),
        "params": {"label": "revenue", "rounds": 2, **params},
    }


def _running(c: Consortium, **params: object) -> str:
    grants = _grants(c)
    task = c.send(c.analyst, "task.submit", _task(grants, **params)).tx_id
    digests = [digest(f"{org} v1") for org in grants]
    return c.send(c.analyst, "run.start", {"task": task, "input_digests": digests}).tx_id


def _round(
    run: str, rnd: int, parts: list[str] | None = None, dropped: list[str] | None = None
) -> dict[str, Any]:
    parts = parts if parts is not None else ["bank", "power", "tax"]
    dropped = dropped if dropped is not None else sorted({"bank", "power", "tax"} - set(parts))
    return {
        "run": run,
        "round": rnd,
        "participants": parts,
        "dropped": dropped,
        "model_digest": digest(f"m{rnd}"),
    }


def test_fl_task_shape_is_checked(c: Consortium) -> None:
    grants = _grants(c)
    two = dict(list(grants.items())[:2])
    assert _code(c.refused(c.analyst, "task.submit", _task(two))) is Code.MALFORMED
    for bad in ({"rounds": 0}, {"rounds": "3"}, {"threshold": 1}, {"threshold": 4}):
        assert _code(c.refused(c.analyst, "task.submit", _task(grants, **bad))) is Code.MALFORMED, bad
    uneven = _task(grants)
    uneven["inputs"][1]["columns"] = ["credit_code"]
    assert _code(c.refused(c.analyst, "task.submit", uneven)) is Code.MALFORMED
    no_code = _task(grants)
    del no_code["code"]
    assert _code(c.refused(c.analyst, "task.submit", no_code)) is Code.MALFORMED
    tee_grants = _grants(c, ("tee",))  # a grant for another engine does not cover fl
    assert _code(c.refused(c.analyst, "task.submit", _task(tee_grants))) is Code.OUT_OF_SCOPE
    c.send(c.analyst, "task.submit", _task(grants, threshold=3))


def test_rounds_are_recorded_in_order_by_the_coordinator_only(c: Consortium) -> None:
    run = _running(c)
    coord = c.coordinator  # type: ignore[attr-defined]
    cases = [
        (c.analyst, _round(run, 0), Code.FORBIDDEN),  # the requester is not the coordinator node
        (c.tax_node, _round(run, 0), Code.FORBIDDEN),  # a node of another org neither
        (coord, _round(run, 1), Code.INVALID_STATE),  # rounds start at 0
        (coord, _round(run, 0, ["power"]), Code.MALFORMED),  # schema: at least two participants
        (coord, _round(run, 0, ["bank", "power"], []), Code.MALFORMED),  # dropped must name tax
        (coord, _round(run, 0, ["power", "bank"]), Code.MALFORMED),  # not sorted
        (coord, _round(run, 0, ["bank", "tax", "telecom"]), Code.OUT_OF_SCOPE),  # not an input org
    ]
    for who, payload, code in cases:
        assert _code(c.refused(who, "fl.round", payload)) is code, payload
    c.send(coord, "fl.round", _round(run, 0))
    c.send(coord, "fl.round", _round(run, 1, ["bank", "tax"]))  # power dropped: 2 >= t = 2
    assert _code(c.refused(coord, "fl.round", _round(run, 1))) is Code.INVALID_STATE  # again
    c.send(coord, "fl.round", _round(run, 2))
    assert _code(c.refused(coord, "fl.round", _round(run, 3))) is Code.OUT_OF_SCOPE  # task has 2
    rec = c.query(f"run/{run}")["fl_rounds"]
    assert [r["round"] for r in rec] == [0, 1, 2] and rec[1]["dropped"] == ["power"]


def test_a_round_below_the_threshold_is_never_recorded(c: Consortium) -> None:
    run = _running(c, threshold=3)
    refused = c.refused(c.coordinator, "fl.round", _round(run, 0, ["bank", "tax"]))  # type: ignore[attr-defined]
    assert _code(refused) is Code.OUT_OF_SCOPE and "threshold" in refused.reason  # type: ignore[attr-defined]


def test_final_model_metrics_and_a_run_finish_bound_to_it(c: Consortium) -> None:
    run = _running(c)
    coord = c.coordinator  # type: ignore[attr-defined]
    final = {
        "run": run,
        "model_digest": digest("m2"),
        "participants": ["bank", "power", "tax"],
        "metrics": {"val_auc": "0.91", "val_rows": 300},
    }
    assert _code(c.refused(coord, "fl.final", final)) is Code.INVALID_STATE  # rounds missing
    for rnd in range(3):
        c.send(coord, "fl.round", _round(run, rnd))
    assert _code(c.refused(coord, "fl.final", final | {"model_digest": digest("m1")})) is Code.MALFORMED
    assert (
        _code(c.refused(coord, "fl.final", final | {"metrics": {"val_auc": "high"}})) is Code.MALFORMED
    )  # no floats
    # a succeeded finish needs the recorded final model
    finish = {"run": run, "status": "succeeded", "output_digest": digest("m2")}
    assert _code(c.refused(c.analyst, "run.finish", finish)) is Code.INVALID_STATE
    c.send(coord, "fl.final", final)
    assert _code(c.refused(coord, "fl.final", final)) is Code.INVALID_STATE  # once
    assert _code(c.refused(coord, "fl.round", _round(run, 3))) is Code.INVALID_STATE  # nothing after it
    wrong = finish | {"output_digest": digest("m1")}
    assert _code(c.refused(c.analyst, "run.finish", wrong)) is Code.INVALID_STATE
    c.send(c.analyst, "run.finish", finish)
    release = c.query(f"release/{run}")
    assert release["metrics"] == {"val_auc": "0.91", "val_rows": 300} and release["status"] == "pending"
    for org, unit in UNITS.items():
        c.send(
            c.owners[org],
            "release.decide",
            {"run": run, "dataset": f"{org}/{unit}/records", "decision": "approve"},
        )
    assert c.query(f"release/{run}")["status"] == "released"
    assert _code(c.refused(coord, "fl.round", _round(run, 3))) is Code.INVALID_STATE  # run over


def test_rounds_of_a_cancelled_run_are_refused(c: Consortium) -> None:
    run = _running(c)
    c.send(c.analyst, "run.finish", {"run": run, "status": "cancelled"})
    assert _code(c.refused(c.coordinator, "fl.round", _round(run, 0))) is Code.INVALID_STATE  # type: ignore[attr-defined]
