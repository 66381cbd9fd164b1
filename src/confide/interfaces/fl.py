"""Driving an fl run from the SDK: federated training across the inputs' org nodes, released by owners.

::

    task = submit_fl_task(client, inputs=[(dataset, grant, columns), ...], label="y", holdout="holdout")
    out = run_fl_task(client, task, say=print)   # run.start -> rounds (each on the ledger) -> run.finish
    # ... each participant's owner approves the release, having seen out["metrics"] ...
    model = fetch_fl_model(client, out["run"])  # from the coordinating node, checked against the ledger

The requester's own node coordinates (a node of the requester's org); it learns only secure sums.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engines.fl.job import FL_CODE, FlSpec, Standardization, model_digest, predict
from . import sdk
from .client import ApiCallError, Client
from .runs import RunFailed, input_digests, node_step

__all__ = ["FlModel", "FlModelInvalid", "FlRunFailed", "fetch_fl_model", "run_fl_task", "submit_fl_task"]

POLL_S = 0.5


class FlRunFailed(RunFailed):
    """The run failed; it is recorded as failed on the ledger with this reason."""


def submit_fl_task(
    client: Client,
    *,
    inputs: Sequence[tuple[str, str, Sequence[str]]],
    label: str,
    holdout: str | None = None,
    rounds: int = 10,
    model: str = "logreg",
    strategy: str = "fedavg",
    learning_rate: float = 0.1,
    local_epochs: int = 1,
    batch_size: int = 64,
    hidden: int = 16,
    mu: float = 0.01,
    seed: int = 0,
    threshold: int | None = None,
    dp_clip: float | None = None,
    dp_noise: float = 0.0,
    dp_delta_exp: int = 5,
) -> str:
    """Submit an fl task over ``(dataset, grant, columns)`` of each participant (the same columns in
    each); every column but ``label`` and ``holdout`` is a feature. Returns the task id."""
    params: dict[str, Any] = {
        "label": label,
        "rounds": rounds,
        "model": model,
        "strategy": strategy,
        "lr_milli": round(learning_rate * 1000),  # the ledger signs no floats
        "local_epochs": local_epochs,
        "batch_size": batch_size,
        "seed": seed,
    }
    if holdout is not None:
        params["holdout"] = holdout
    if model == "mlp":
        params["hidden"] = hidden
    if strategy == "fedprox":
        params["mu_milli"] = round(mu * 1000)
    if threshold is not None:
        params["threshold"] = threshold
    if dp_clip is not None:
        params |= {
            "dp_clip_milli": round(dp_clip * 1000),
            "dp_noise_milli": round(dp_noise * 1000),
            "dp_delta_exp": dp_delta_exp,
        }
    task_inputs = [{"dataset": d, "grant": g, "columns": list(c)} for d, g, c in inputs]
    r = sdk.submit_task(
        client.ledger, client.identity, engine="fl", inputs=task_inputs, code=FL_CODE, params=params
    )
    return r.tx_id


def _progress_line(status: dict[str, Any]) -> str | None:
    done = (status.get("progress") or {}).get("rounds_done") or []
    if not done:
        return None
    last = done[-1]
    total = (status.get("progress") or {}).get("rounds", "?")
    what = {"setup": "set-up (feature statistics)", "eval": "validation metrics"}.get(
        last["phase"], f"train round {last['round']}/{total}"
    )
    dropped = f", dropped {', '.join(last['dropped'])}" if last["dropped"] else ""
    return f"[coordinator] {what}: {len(last['participants'])} participants{dropped}"


def run_fl_task(
    client: Client, task_id: str, *, say: Callable[[str], None] = lambda _: None, timeout_s: float = 3600
) -> dict[str, Any]:
    """One run of an fl task, coordinated by ``client``'s node; the run is on the ledger either way."""
    task = client.query(f"task/{task_id}")
    r = sdk.start_run(client.ledger, client.identity, task_id, input_digests(client, task))
    run_id = r.tx_id
    say(f"[ledger] run.start {run_id[:16]} at block {r.height}: grants re-checked, one use each")
    node_step(client, run_id, "/v1/fl/runs", {"run": run_id, "min_height": r.height}, FlRunFailed)
    deadline, last = time.monotonic() + timeout_s, ""
    while True:
        try:
            status: dict[str, Any] = client.call("GET", f"/v1/fl/runs/{run_id}")
        except ApiCallError as exc:
            status = {"status": "unknown", "reason": exc.message}
        line = _progress_line(status)
        if line and line != last:
            say(line)
            last = line
        if status.get("status") in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    if status.get("status") != "done":
        reason = str(status.get("reason") or "the coordinator did not finish in time")[:2000]
        sdk.finish_run(
            client.ledger, client.identity, run_id, output_digest=None, status="failed", reason=reason
        )
        raise FlRunFailed(run_id, "FL_FAILED", reason)
    digest = str(status["model_digest"])
    f = sdk.finish_run(client.ledger, client.identity, run_id, output_digest=digest)
    status = client.call("GET", f"/v1/fl/runs/{run_id}")
    say(f"[ledger] run.finish at block {f.height}: final model {digest[:16]}…, release pending")
    return {"run": run_id, "model_digest": digest, "metrics": status.get("metrics", {}), "height": f.height}


@dataclass(frozen=True)
class FlModel:
    spec: FlSpec
    std: Standardization
    params: np.ndarray
    digest: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores for rows ``x`` (columns in ``spec.features`` order)."""
        return predict(self.spec, self.std, self.params, np.asarray(x, dtype=np.float64))


class FlModelInvalid(Exception):
    """The model the node handed over does not have the digest recorded on the ledger."""


def fetch_fl_model(client: Client, run: str) -> FlModel:
    """The released model from the coordinating node, checked against the run's digest on the ledger."""
    out = client.call("POST", f"/v1/fl/models/{run}", {"min_height": client.last_height})
    run_rec = client.query(f"run/{run}")
    spec = FlSpec.from_task(client.query(f"task/{run_rec['task']}"))
    m = out["model"]
    std = Standardization(np.array(m["mean"]), np.array(m["scale"]), int(m["total_rows"]))
    params = np.array(m["params"], dtype=np.float64)
    digest = model_digest(spec, std, params)
    if digest != run_rec["output_digest"]:
        raise FlModelInvalid("the model does not match the digest on the ledger")
    return FlModel(spec, std, params, digest)
