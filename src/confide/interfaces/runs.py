"""What every engine's run looks like from the SDK: the input versions it names, and its failure.

``run_tee_task``, ``run_psi_task`` and ``run_mpc_task`` all start a run on the ledger, ask a node to
do the engine's work, and record the run as failed when a node refuses; these are their shared parts.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..ledger import Receipt, TxRefused
from ..ledger.contract.tasks import run_input_digests
from . import sdk
from .client import ApiCallError, Client

__all__ = ["PROGRESS_EVERY_S", "RunFailed", "cancel_run", "input_digests", "node_step", "watching"]

PROGRESS_EVERY_S = 2.0


class RunFailed(Exception):
    """The run failed; it is recorded as failed on the ledger with this reason."""

    def __init__(self, run: str, code: str, message: str) -> None:
        super().__init__(f"run {run[:16]} failed: {code}: {message}")
        self.run, self.code, self.message = run, code, message


def input_digests(client: Client, task: dict[str, Any]) -> list[str]:
    """The latest dataset version each input's grant covers (what ``run.start`` names)."""
    return run_input_digests(client.query, task)


def node_step(
    client: Client, run_id: str, path: str, body: dict[str, Any], failed: type[RunFailed]
) -> dict[str, Any]:
    """POST one step of a run to ``client``'s node; on refusal record the run failed and raise ``failed``
    (a run that already ended meanwhile, e.g. cancelled, keeps its status)."""
    try:
        out: dict[str, Any] = client.call("POST", path, body)
    except ApiCallError as exc:
        reason = f"{exc.code}: {exc.message}"[:2000]
        with contextlib.suppress(TxRefused):
            sdk.finish_run(
                client.ledger, client.identity, run_id, output_digest=None, status="failed", reason=reason
            )
        raise failed(run_id, exc.code, exc.message) from None
    return out


def cancel_run(client: Client, run_id: str, reason: str = "cancelled by the requester") -> Receipt:
    """Cancel a running run on the ledger: every party's node then stops its part (its engine aborts,
    the peers are told) and erases what it computed for the run; no release is opened."""
    return sdk.finish_run(
        client.ledger, client.identity, run_id, output_digest=None, status="cancelled", reason=reason
    )


@contextlib.contextmanager
def watching(
    client: Client, path: str, render: Callable[[dict[str, Any]], str | None], say: Callable[[str], None]
) -> Iterator[None]:
    """While the block runs (a node step that blocks until the engine is done), GET ``path`` every
    :data:`PROGRESS_EVERY_S` seconds and ``say`` what ``render`` makes of it, when that changed."""
    done = threading.Event()

    def loop() -> None:
        last = ""
        while not done.wait(PROGRESS_EVERY_S):
            try:
                line = render(client.call("GET", path))
            except ApiCallError:
                continue
            if line and line != last:
                say(line)
                last = line

    watcher = threading.Thread(target=loop, daemon=True, name="run-progress")
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(timeout=5)
