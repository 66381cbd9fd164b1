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
    engine: str = typer.Option(
        "ecdh", help="ecdh (built-in), or SecretFlow SPU's spu-rr22, spu-kkrt, spu-ecdh (needs .spu-venv)."
    ),
    skip_direct: bool = typer.Option(False, help="SPU engines: skip the direct-SPU baseline (for 1e8 IDs)."),
    repeat: int = typer.Option(3, min=1, help="SPU engines: runs of each (the best of each is reported)."),
) -> None:
    """Two PSI parties on this machine: ECDH-PSI vs. the X25519 limit, or SPU via Confide vs. SPU direct."""
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    if output not in ("receiver", "both"):
        raise typer.BadParameter("output must be 'receiver' or 'both'")
    if engine == "ecdh":
        from ...engines.psi.bench import run_psi_bench

        result = run_psi_bench(n, workers or None, batch, output, log)
    else:
        from ...engines.psi.bench_spu import run_spu_bench
        from ...engines.psi.spu import SPU_PROTOCOLS

        if engine not in SPU_PROTOCOLS:
            raise typer.BadParameter(f"engine must be ecdh or one of {', '.join(sorted(SPU_PROTOCOLS))}")
        if output != "receiver":
            raise typer.BadParameter("the SPU bench measures output 'receiver' only")
        result = run_spu_bench(n, engine, skip_direct, log, repeat=repeat)
    print(json.dumps(result, sort_keys=True))
