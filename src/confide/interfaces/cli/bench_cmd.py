"""``confide bench``: benchmark commands; the last line printed is one JSON object."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ._common import friendly
from .bench_psi import psi

bench_app = typer.Typer(help="Benchmarks (print one JSON line last).", no_args_is_help=True)


@bench_app.command("ledger")
@friendly
def ledger(
    txs: int = typer.Option(20_000, help="Signed client txs to commit."),
    block_txs: int = typer.Option(2000, help="Max txs per block."),
    workdir: Path | None = typer.Option(None, help="Folder for the stores (default: a temp dir)."),
    suite: str = typer.Option("default", help="Crypto suite: default or gm."),
    backend: str = typer.Option(
        "embedded", help="embedded (solo orderer), evm, etcd, fabric or chainmaker (derived from a log)."
    ),
    evm_rpc: str | None = typer.Option(
        None,
        "--evm-rpc",
        "--endpoint",
        help="evm: the chain's endpoint; etcd: a member (default: start one).",
    ),
    evm_key: str | None = typer.Option(
        None, envvar="CONFIDE_EVM_KEY", help="evm: a funded account's 0x key."
    ),
) -> None:
    """Orderer (or EVM chain) + separate replica process, durable on disk; also raw verify/s on one core."""
    if backend in ("evm", "etcd", "fabric", "chainmaker"):
        from ...ledger.derived_bench import run_derived_ledger_bench

        out = run_derived_ledger_bench(
            backend, txs=txs, block_txs=block_txs, workdir=workdir, endpoint=evm_rpc, account_key=evm_key
        )
        print(json.dumps(out, sort_keys=True))
        return
    if backend != "embedded":
        raise typer.BadParameter("--backend: embedded, evm, etcd, fabric or chainmaker")
    from ...ledger.bench import run_ledger_bench

    result = run_ledger_bench(txs=txs, block_txs=block_txs, workdir=workdir, suite=suite)
    print(json.dumps(result, sort_keys=True))


@bench_app.command("catalog")
@friendly
def catalog(
    rows: int = typer.Option(10_000_000, min=1, help="Rows of the generated CSV."),
    workdir: Path | None = typer.Option(None, help="Folder for the CSV (default: system temp)."),
    repeat: int = typer.Option(2, min=1, help="Runs of each step; the fastest is reported."),
) -> None:
    """Register a big CSV through the connector (schema, rows, Merkle digest) vs. plain pyarrow reading."""
    from ...node.connectors.bench import run_catalog_bench

    result = run_catalog_bench(rows=rows, workdir=workdir, repeat=repeat)
    print(json.dumps(result, sort_keys=True))


@bench_app.command("tee")
@friendly
def tee(
    rows: int = typer.Option(10_000_000, min=1, help="Rows per party (three parties)."),
    workdir: Path | None = typer.Option(None, help="Folder for the Parquet files (default: system temp)."),
    frame_kb: int = typer.Option(1024, min=4, max=1024, help="Trusted-channel frame size limit, KiB."),
) -> None:
    """A 3-party join in an attested (simulated) enclave vs. plain DuckDB on the same Parquet files."""
    from ...engines.tee.bench import run_tee_bench

    result = run_tee_bench(rows, workdir, frame_kb, lambda s: print(s, flush=True))
    print(json.dumps(result, sort_keys=True))


@bench_app.command("mpc")
@friendly
def mpc(rows: int = typer.Option(1_000_000, min=100, help="PSI-aligned rows (two parties).")) -> None:
    """Joint statistics of the marketing scenario in MPC (in-process, two parties + dealer) vs. numpy."""
    from ...engines.mpc.bench import bench_mpc

    print(f"bench mpc: {rows} rows, two parties and a dealer in one process", flush=True)
    result = {"bench": "mpc", **bench_mpc(rows)}
    print(json.dumps(result, sort_keys=True))


@bench_app.command("scheduler")
@friendly
def scheduler(
    tasks: int = typer.Option(10_000, min=1, max=1_000_000, help="Tasks due in the same minute."),
    lead_s: float | None = typer.Option(
        None, min=1, help="Slot this many seconds ahead (default: next minute)."
    ),
) -> None:
    """N scheduled tasks (no-op engine) firing in one minute: dispatch lateness and read-API latency."""
    import sys

    from ...node.scheduler.bench import run_scheduler_bench

    result = run_scheduler_bench(tasks, lambda s: print(s, file=sys.stderr, flush=True), lead_s)
    print(json.dumps(result, sort_keys=True))


@bench_app.command("fl")
@friendly
def fl(
    clients: int = typer.Option(10, min=3, help="Clients in the round."),
    params: int = typer.Option(1_000_000, min=1, help="Model parameters per update."),
    dropout: float = typer.Option(0.0, min=0.0, max=0.9, help="Share of clients that drop out."),
    seed: int = typer.Option(1, help="Seed of the synthetic updates and dropouts."),
    repeat: int = typer.Option(3, min=1, max=50, help="Rounds of each kind; medians are reported."),
) -> None:
    """Secure-aggregation rounds (pairwise masks, Shamir-shared seeds, dropouts recovered) vs the
    same rounds summed without masking, in this process."""
    import sys

    from ...engines.fl.bench import run_bench

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_bench(clients=clients, params=params, dropout=dropout, seed=seed, repeat=repeat, say=say)
    print(json.dumps(result, sort_keys=True))


bench_app.command("psi")(psi)
