"""``confide task``: scheduled tasks from the requester's side (``watch`` their runs)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape

from ..runs import cancel_run
from ..tasks import OPEN_STATES, cancel_slot, task_slots
from ._client_common import JsonOpt, KeyOpt, NodeOpt, SuiteOpt, _connect, api_friendly
from ._common import console, print_json

__all__ = ["task_app"]

task_app = typer.Typer(
    help="Scheduled tasks: watch what the scheduler does with their slots.", no_args_is_help=True
)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@task_app.command("watch")
@api_friendly
def watch(
    task: str = typer.Argument(..., help="Task id (64 hex)."),
    follow: bool = typer.Option(
        False, "--follow", help="Keep watching until no slot is open (Ctrl-C stops)."
    ),
    interval: float = typer.Option(2.0, min=0.2, help="Seconds between looks with --follow."),
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Each slot of your scheduled task: queued, waiting for peers, running, awaiting release,
    released / rejected / failed (with the reason) / skipped / cancelled."""
    seen: dict[int, str] = {}
    with _connect(node, key, suite) as c:
        while True:
            rows = task_slots(c, task)
            if as_json:
                print_json(rows)
            else:
                for r in rows:
                    line = f"{_when(r['slot'])}  {r['state']}"
                    if r["run"]:
                        line += f"  run {r['run'][:16]}"
                    if r["reason"]:
                        line += f"  ({r['reason']})"
                    if seen.get(r["slot"]) != line:
                        console.print(escape(line))
                        seen[r["slot"]] = line
                if not rows and not seen:
                    console.print("no slot taken up yet")
                    seen[-1] = ""
            if not follow or (rows and not any(r["state"] in OPEN_STATES[:3] for r in rows)):
                return
            time.sleep(interval)


@task_app.command("cancel-run")
@api_friendly
def cancel_run_cmd(
    run: str = typer.Argument(..., help="Run id (64 hex)."),
    reason: str = typer.Option("cancelled by the requester", help="Why (recorded on the ledger)."),
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
) -> None:
    """Cancel a running run of yours: every party's node stops its part and keeps nothing of it."""
    with _connect(node, key, suite) as c:
        receipt = cancel_run(c, run, reason)
    console.print(f"run {run[:16]} cancelled at block {receipt.height}; the parties' nodes stop their part")


@task_app.command("cancel-slot")
@api_friendly
def cancel_slot_cmd(
    task: str = typer.Argument(..., help="Task id (64 hex)."),
    slot: str = typer.Argument(
        ..., help="The slot: UTC ms as `task watch --json` prints it, or ISO 8601 (2026-12-01T02:00Z)."
    ),
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
) -> None:
    """Cancel one slot of your scheduled task: not yet due, queued or waiting (no run starts, no grant
    use is spent), or running (its run is cancelled and every party's node stops its part)."""
    ms = _slot_ms(slot)
    with _connect(node, key, suite) as c:
        out = cancel_slot(c, task, ms)
    if out["run"]:
        run = out["run"][:16]
        console.print(f"slot {_when(ms)}: run {run} cancelled; the parties' nodes stop their part")
    else:
        console.print(f"slot {_when(ms)} cancelled before its run started; no run, no grant use")


def _slot_ms(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give UTC milliseconds or an ISO 8601 time") from None
    if when.tzinfo is None:
        raise typer.BadParameter(f"{text!r}: say the zone (e.g. 2026-12-01T02:00Z or +08:00)")
    return int(when.timestamp() * 1000)
