"""``confide bench psi``: ECDH-PSI between two parties on this machine; the last line is one JSON object.

Registered in ``bench_cmd.py`` with ``bench_app.command("psi")(psi)``.
"""

from __future__ import annotations

import json
import sys

import typer

from ._common import friendly

__all__ = ["psi"]


@friendly
def psi(
    n: int = typer.Option(1_000_000, "--n", min=1, help="IDs per party (50% overlap)."),
    workers: int = typer.Option(0, min=0, help="Process-pool workers (0: one per core)."),
    batch: int = typer.Option(1 << 14, min=1, max=1 << 16, help="Items per PSI message."),
    output: str = typer.Option("receiver", help="Who learns the intersection: receiver or both."),
) -> None:
    """Two ECDH-PSI parties (X25519, RFC 9380 hash-to-curve) vs. the single-core X25519 limit."""
    from ...engines.psi.bench import run_psi_bench

    if output not in ("receiver", "both"):
        raise typer.BadParameter("output must be 'receiver' or 'both'")
    result = run_psi_bench(n, workers or None, batch, output, lambda s: print(s, file=sys.stderr, flush=True))
    print(json.dumps(result, sort_keys=True))
