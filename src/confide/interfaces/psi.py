"""Driving a psi run from the SDK: the requester's side, through its own org's node (the receiver).

::

    task = submit_psi_task(client, mine=("bank/retail/customers", grant_a, "phone"),
                           theirs=("telecom/mobile/subscribers", grant_b, "phone"))
    out = run_psi_task(client, task)   # run.start -> the two nodes run ECDH-PSI -> run.finish

The intersection (the requester org's own IDs) stays on its node for a later step; the requester
gets its size and ``output_digest`` (SHA-256 of the sorted canonical IDs joined by "\\n"), which
goes on the ledger with ``run.finish``. A failed run is recorded as failed with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..engines.psi.interface import ECDH_PSI_CODE as PSI_CODE
from ..engines.psi.registry import code_digest
from . import sdk
from .client import Client
from .runs import RunFailed, input_digests, node_step, watching

__all__ = ["PSI_CODE", "PsiRunFailed", "input_digests", "run_psi_task", "submit_psi_task"]


class PsiRunFailed(RunFailed):
    """The run failed; it is recorded as failed on the ledger with this reason."""


def submit_psi_task(
    client: Client,
    *,
    mine: tuple[str, str, str],
    theirs: tuple[str, str, str],
    output: str = "receiver",
    engine: str = "ecdh",
) -> str:
    """Submit a psi task over (dataset, grant, ID column) of each party; returns the task id.

    ``engine``: ``ecdh`` (built-in) or SecretFlow SPU's ``spu-rr22``, ``spu-kkrt``, ``spu-ecdh``
    (both nodes need SPU's venv); it goes on the ledger as the task's code digest."""
    inputs = [{"dataset": d, "grant": g, "columns": [c]} for d, g, c in (mine, theirs)]
    r = sdk.submit_task(
        client.ledger,
        client.identity,
        engine="psi",
        inputs=inputs,
        code_digest=code_digest(engine),
        params={"output": output},
    )
    return r.tx_id


def run_psi_task(
    client: Client,
    task_id: str,
    *,
    say: Callable[[str], None] = lambda _: None,
    session: str | None = None,
) -> dict[str, Any]:
    """One run of a psi task, received by ``client``'s node; the run is on the ledger either way."""
    task = client.query(f"task/{task_id}")
    r = sdk.start_run(client.ledger, client.identity, task_id, input_digests(client, task))
    run_id = r.tx_id
    say(f"[ledger] run.start {run_id[:16]} at block {r.height}: grants re-checked")
    say("[node] both nodes check their own grant, then run the task's PSI engine over their signed link")
    body: dict[str, Any] = {"run": run_id, "min_height": r.height}
    if session is not None:
        body["session"] = session
    with watching(client, f"/v1/psi/runs/{run_id}", _progress_line, say):
        out = node_step(client, run_id, "/v1/psi/runs", body, PsiRunFailed)
    f = sdk.finish_run(client.ledger, client.identity, run_id, output_digest=out["output_digest"])
    say(
        f"[ledger] run.finish at block {f.height}: {out['intersection_size']} in common, "
        f"digest {out['output_digest'][:16]}…"
    )
    return {
        "run": run_id,
        "intersection_size": out["intersection_size"],
        "output_digest": out["output_digest"],
        "session": out["session"],
        "height": f.height,
    }


def _progress_line(p: dict[str, Any]) -> str | None:
    """This node's side of a running PSI: items done of its total (SPU engines report percent)."""
    live = p.get("live") or []
    if not live:
        return None
    x = live[0]
    line = f"[node] PSI {x['state']} ({x['role']})"
    if x.get("total"):
        line += f": {x['done']:,}/{x['total']:,} ({100 * x['done'] // x['total']}%)"
    return line
