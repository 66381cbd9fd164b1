"""Driving an mpc run from the SDK: joint statistics on PSI-aligned rows, released by the owners.

::

    task = submit_mpc_task(client, mine=("bank/retail/customers", grant_a, ["phone", "assets"]),
                           theirs=("power/mobile/subscribers", grant_b, ["phone", "spend"]),
                           psi_run=psi["run"], dealer="tax")
    out = run_mpc_task(client, task)   # run.start -> three nodes compute -> run.finish (commitment)
    # ... each input owner approves the release on the ledger (sdk.decide_release) ...
    stats = fetch_mpc_result({"bank": bank_client, "power": power_client}, out["run"])

The outputs stay as additive shares on the two parties' nodes (one share alone is uniformly
random). ``run.finish`` records ``output_digest`` = SHA-256 of canonical JSON ``{org: SHA-256 of
that org's share message}``, which opens the release record; each node hands its share to the
requester only once its own ledger view shows the release approved by every input owner.
``fetch_mpc_result`` checks both shares against that commitment before it adds them up.

SS-LR (``submit_lr_task``, code ``mpc-ss-lr/v1``): the same flow; the released output is the score
``u = w . [x_bank | x_partner | 1]`` of every aligned row (the weights never leave the shares), and
``fetch_mpc_result`` answers ``{"ids": [...], "scores": [...]}`` (the IDs from the requester org's own
node). ``segment_table`` turns a crossed joint-statistics result (``cross_key``) into cells.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..crypto.canonical import canonical_bytes
from ..engines.mpc import MpcError, reveal
from ..engines.mpc import fixedpoint as fp
from ..engines.mpc.stats import StatsSpec, finalize
from . import sdk
from .client import Client
from .runs import RunFailed, input_digests, node_step
from .tee import recipient_public

__all__ = [
    "MPC_CODE",
    "MPC_CODE_DIGEST",
    "MPC_LR_CODE",
    "MPC_LR_CODE_DIGEST",
    "MpcResultInvalid",
    "MpcRunFailed",
    "fetch_mpc_result",
    "run_mpc_task",
    "segment_table",
    "submit_lr_task",
    "submit_mpc_task",
]

MPC_CODE = "mpc-joint-stats/v1"  # same as confide.node.mpc.MPC_CODE
MPC_CODE_DIGEST = hashlib.sha256(MPC_CODE.encode("utf-8")).hexdigest()
MPC_LR_CODE = "mpc-ss-lr/v1"  # same as confide.node.mpc.MPC_LR_CODE
MPC_LR_CODE_DIGEST = hashlib.sha256(MPC_LR_CODE.encode("utf-8")).hexdigest()
REQUESTER = 9  # receiver id in the engine's reveal messages (confide.node.mpc.REQUESTER)


class MpcRunFailed(RunFailed):
    """The run failed; it is recorded as failed on the ledger with this reason."""


class MpcResultInvalid(Exception):
    """A share does not match the commitment on the ledger, or the shares do not fit together."""


def submit_mpc_task(
    client: Client,
    *,
    mine: tuple[str, str, Sequence[str]],
    theirs: tuple[str, str, Sequence[str]],
    psi_run: str,
    dealer: str,
    group_key: str | None = None,
    n_groups: int | None = None,
    cross_key: str | None = None,
    n_cross: int | None = None,
    min_cell: int | None = None,
) -> str:
    """Submit an mpc joint-statistics task over (dataset, grant, [ID column, value columns...]) of each
    party, aligned by the (succeeded, output both) psi run ``psi_run``; returns the task id.

    ``min_cell``: suppress (inside the MPC) every group, tier and cell with fewer aligned rows; the
    nodes enforce at least the inputs' ``min_group_size`` policies whatever the task asks."""
    inputs = [{"dataset": d, "grant": g, "columns": list(c)} for d, g, c in (mine, theirs)]
    # the requester's recipient key: the web console fetches the released shares encrypted to it
    params: dict[str, Any] = {
        "psi_run": psi_run,
        "dealer": dealer,
        "recipient": recipient_public(client.identity),
    }
    if group_key is not None:
        params |= {"group_key": group_key, "n_groups": n_groups}
    if cross_key is not None:
        params |= {"cross_key": cross_key, "n_cross": n_cross}
    if min_cell is not None:
        params["min_cell"] = min_cell
    r = sdk.submit_task(
        client.ledger,
        client.identity,
        engine="mpc",
        inputs=inputs,
        code_digest=MPC_CODE_DIGEST,
        params=params,
    )
    return r.tx_id


def submit_lr_task(
    client: Client,
    *,
    mine: tuple[str, str, Sequence[str]],
    theirs: tuple[str, str, Sequence[str]],
    psi_run: str,
    dealer: str,
    label: str,
    epochs: int = 5,
    batch_size: int = 256,
    learning_rate: float = 1.0,
    shuffle_seed: int = 0,
) -> str:
    """Submit an SS-LR task: ``label`` (``'<dataset>:<column>'``, 0/1) is a column of ``mine``; every
    other value column of both inputs is a feature (standardized by its owner on its own rows)."""
    inputs = [{"dataset": d, "grant": g, "columns": list(c)} for d, g, c in (mine, theirs)]
    params: dict[str, Any] = {
        "psi_run": psi_run,
        "dealer": dealer,
        "label": label,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr_milli": round(learning_rate * 1000),  # the ledger signs no floats
        "shuffle_seed": shuffle_seed,
    }
    r = sdk.submit_task(
        client.ledger,
        client.identity,
        engine="mpc",
        inputs=inputs,
        code_digest=MPC_LR_CODE_DIGEST,
        params=params,
    )
    return r.tx_id


def run_mpc_task(
    client: Client, task_id: str, *, say: Callable[[str], None] = lambda _: None, session: str | None = None
) -> dict[str, Any]:
    """One run of an mpc task, driven through ``client``'s node; the run is on the ledger either way."""
    task = client.query(f"task/{task_id}")
    r = sdk.start_run(client.ledger, client.identity, task_id, input_digests(client, task))
    run_id = r.tx_id
    say(f"[ledger] run.start {run_id[:16]} at block {r.height}: grants re-checked")
    say("[node] both parties check their own grant, align on the psi intersection, compute with the dealer")
    body: dict[str, Any] = {"run": run_id, "min_height": r.height}
    if session is not None:
        body["session"] = session
    out = node_step(client, run_id, "/v1/mpc/runs", body, MpcRunFailed)
    f = sdk.finish_run(client.ledger, client.identity, run_id, output_digest=out["output_digest"])
    say(f"[ledger] run.finish at block {f.height}: {out['rows']} rows, shares committed, release pending")
    return {**out, "height": f.height}


def fetch_mpc_result(client_by_org: Mapping[str, Client], run: str) -> dict[str, Any]:
    """Fetch both parties' shares (each node checks the release), check them against the run's
    ``output_digest`` on the ledger, reveal and finalize into named statistics."""
    any_client = next(iter(client_by_org.values()))
    run_rec = any_client.query(f"run/{run}")
    task = any_client.query(f"task/{run_rec['task']}")
    orgs = [any_client.query(f"dataset/{i['dataset']}")["org"] for i in task["inputs"]]
    answers = {}
    for org in orgs:
        c = client_by_org[org]
        answers[org] = c.call("POST", f"/v1/mpc/shares/{run}", {"min_height": c.last_height})
    shares = {org: bytes.fromhex(a["share"]) for org, a in answers.items()}
    digests = {org: hashlib.sha256(b).hexdigest() for org, b in shares.items()}
    if hashlib.sha256(canonical_bytes(digests)).hexdigest() != run_rec["output_digest"]:
        raise MpcResultInvalid("the shares do not match the commitment in the run's output_digest")
    sessions = {a["session"] for a in answers.values()}
    specs = [a["spec"] for a in answers.values()]
    if len(sessions) != 1 or any(s != specs[0] for s in specs):
        raise MpcResultInvalid("the parties' shares belong to different sessions or specs")
    by_party = {int(a["party"]): shares[org] for org, a in answers.items()}
    if task["code_digest"] == MPC_LR_CODE_DIGEST:
        ids = next((a["ids"] for a in answers.values() if int(a["party"]) == 0 and "ids" in a), None)
        try:
            (scores,) = reveal(by_party, bytes.fromhex(sessions.pop()), REQUESTER, (0, 1), 1)
        except MpcError as exc:
            raise MpcResultInvalid(f"the shares do not reveal: {exc}") from None
        values = fp.decode(scores)
        if ids is None or len(ids) != len(values) or values.shape != (int(specs[0]["n_rows"]),):
            raise MpcResultInvalid("the scores do not match the aligned rows")
        return {"kind": "ss-lr", "ids": list(ids), "scores": values.tolist(), "spec": specs[0]}
    spec = StatsSpec(**specs[0])
    try:
        revealed = reveal(by_party, bytes.fromhex(sessions.pop()), REQUESTER, (0, 1), spec.n_outputs)
        stats = finalize(spec, revealed)
    except MpcError as exc:
        raise MpcResultInvalid(f"the shares do not reveal: {exc}") from None
    return _named(stats, _columns(task, orgs, spec), spec)


def _columns(task: dict[str, Any], orgs: list[str], spec: StatsSpec) -> list[str]:
    """Value column names in the engine's order: party 0 (the requester's org) then party 1."""
    first = orgs.index(task["requester_org"])
    ordered = [task["inputs"][first], task["inputs"][1 - first]]
    gk = task["params"].get("group_key")
    ck = task["params"].get("cross_key")
    names = []
    for inp in ordered:
        ds = inp["dataset"]
        cols = [f"{ds}:{c}" for c in inp["columns"][1:] if f"{ds}:{c}" not in (gk, ck)]
        if ck is None:
            names += cols
        elif gk is not None and gk.startswith(f"{ds}:"):  # key owner: v * [key = i]
            names += [f"{c}*[{gk.rsplit(':', 1)[1]}={i}]" for c in cols for i in range(spec.n_groups)]
        else:  # the other party: [cross = j], then v * [cross = j]
            n_cross, cname = int(task["params"]["n_cross"]), ck.rsplit(":", 1)[1]
            names += [f"{ds}:[{cname}={j}]" for j in range(n_cross)]
            names += [f"{c}*[{cname}={j}]" for c in cols for j in range(n_cross)]
    if len(names) != spec.k_a + spec.k_b:
        raise MpcResultInvalid("the task's columns do not match the statistics spec")
    return names


def segment_table(result: Mapping[str, Any], task: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Cells (group i of the group key, level j of the cross key) of a crossed joint-statistics result:
    ``count`` and, for every value column of either party, ``sum`` and ``mean`` over the cell; a cell
    below the minimum cell size is ``{"count": None, "suppressed": True}`` (zeroed inside the MPC)."""
    params = task["params"]
    gk, ck = str(params["group_key"]).rsplit(":", 1)[1], str(params["cross_key"]).rsplit(":", 1)[1]
    n_groups, n_cross, n = int(params["n_groups"]), int(params["n_cross"]), int(result["count"])
    g = result["groups"]
    gcols = list(g["columns"])
    key_cols = [c for c in result["columns"] if c.endswith(f"*[{gk}=0]")]
    other_cols = sorted({c.rsplit("*[", 1)[0] for c in gcols if "*[" in c})
    counts = result.get("cells", {}).get("count")
    small = result.get("suppressed", {}).get("cells")
    cells = []
    for i in range(n_groups):
        for j in range(n_cross):
            if small is not None and small[i][j]:  # below the minimum cell size: nothing but the flag
                cells.append({gk: i, ck: j, "count": None, "suppressed": True})
                continue
            ind = next(c for c in gcols if c.endswith(f":[{ck}={j}]"))
            count = counts[i][j] if counts is not None else round(g["sum"][i][gcols.index(ind)])
            cell: dict[str, Any] = {gk: i, ck: j, "count": count}
            for c in other_cols:
                total = float(g["sum"][i][gcols.index(f"{c}*[{ck}={j}]")])
                cell[c.rsplit(":", 1)[1]] = {"sum": total, "mean": total / count if count else None}
            for c0 in key_cols:
                c = c0.rsplit("*[", 1)[0]
                a = f"{c}*[{gk}={i}]"
                total = n * (result["cov"][a][ind] + result["mean"][a] * result["mean"][ind])
                cell[c.rsplit(":", 1)[1]] = {"sum": total, "mean": total / count if count else None}
            cells.append(cell)
    return cells


def _num(v: Any) -> float | None:
    """A float for JSON; None where the statistic was suppressed (NaN: below the minimum cell size)."""
    f = float(v)
    return None if np.isnan(f) else f


def _nums(a: Any) -> Any:
    return [_nums(x) for x in a] if np.ndim(a) else _num(a)


def _named(stats: dict[str, Any], names: list[str], spec: StatsSpec) -> dict[str, Any]:
    def vec(a: Any) -> dict[str, float | None]:
        return {n: _num(v) for n, v in zip(names, np.asarray(a), strict=True)}

    cov = np.asarray(stats["cov"])
    g = stats["groups"]
    value_names = names[spec.k_a :] if spec.key_owner == 0 else names[: spec.k_a]
    out: dict[str, Any] = {
        "count": int(stats["count"]),
        "columns": names,
        "sum": vec(stats["sum"]),
        "mean": vec(stats["mean"]),
        "var": vec(stats["var"]),
        "cov": {a: {b: _num(cov[i, j]) for j, b in enumerate(names)} for i, a in enumerate(names)},
        "groups": {
            "key_owner": int(g["key_owner"]),
            "value_party": int(g["value_party"]),
            "columns": value_names,
            "count": [None if c is None else int(c) for c in _nums(g["count"])],
            "sum": _nums(g["sum"]),
            "mean": _nums(g["mean"]),
            "var": _nums(g["var"]),
        },
    }
    if "cells" in stats:
        out["cells"] = {
            "count": [[None if c is None else int(c) for c in row] for row in _nums(stats["cells"]["count"])]
        }
    if "suppressed" in stats:
        sup = stats["suppressed"]
        out["suppressed"] = {
            "min_cell": int(sup["min_cell"]),
            "groups": [bool(x) for x in sup["groups"]],
            "levels": [bool(x) for x in sup["levels"]],
            "cells": [[bool(x) for x in row] for row in sup["cells"]],
        }
    return out
