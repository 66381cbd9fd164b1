"""``confide bench ledger``: committed tx/s through orderer and an independent replica.

What is timed: clients' pre-signed txs are submitted to the solo orderer (which
verifies each signature, runs the contract check, batches, signs and durably
writes blocks), while a replica in a *separate process* reads the orderer's
blocks, verifies orderer signature, hash links, Merkle roots and every tx
signature, replays the contract and durably commits to its own store. The clock
stops when the replica has committed the last block. Both stores use SQLite
WAL with ``synchronous=FULL``.

Baseline measured in the same run: raw signature verifications per second on
one core (``verify_per_s``) — every committed tx costs at least two of those.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ..crypto import Identity
from .backend import LedgerBackend
from .embedded import ChainDB, Replica
from .genesis import load_genesis
from .local import LocalLedger, OrgSpec, init_workspace
from .tx import TX_DOMAIN, SignedTx, build_tx

__all__ = ["bench_txs", "figures", "run_ledger_bench", "setup_txs", "verify_rate"]

_SCHEMA = [{"name": f"c{i}", "type": "int64", "nullable": True, "description": ""} for i in range(8)]


def verify_rate(suite: str, seconds: float = 1.0) -> float:
    ident = Identity.generate(suite)
    msg = TX_DOMAIN + b'{"chain":"bench","payload":{"x":1},"type":"a.b"}' * 4
    sig = ident.sign(msg)
    pub = ident.public_key
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(200):
            pub.verify(sig, msg)
        n += 200
    return n / elapsed


def _replica_main(genesis_path: str, source: str, target: str, final_height: int, out: Any) -> None:
    genesis = load_genesis(genesis_path)
    replica = Replica(ChainDB(target), genesis)
    src = ChainDB(source, readonly=True)
    out.put(("ready", replica.height))
    while replica.height < final_height:
        batch = src.blocks_since(replica.height, 50)
        if not batch:
            time.sleep(0.002)
            continue
        for block in batch:
            replica.apply_block(block)
    out.put(("done", time.perf_counter(), replica.state_root()))


def _setup(d: Path, suite: str, clients: int, block_txs: int) -> tuple[LocalLedger, list[Identity]]:
    init_workspace(d, [OrgSpec("bank", "Bank"), OrgSpec("tax", "Tax")], chain_id="bench", suite=suite,
                   max_block_txs=block_txs)  # fmt: skip
    led = LocalLedger(d)
    analysts = [Identity.generate(suite) for _ in range(clients)]
    setup_txs(led.backend, led.key("tax-admin"), led.key("bank-admin"), analysts)
    return led, analysts


def figures(
    *,
    txs: int,
    block_txs: int,
    blocks: int,
    suite: str,
    ordered_s: float,
    total_s: float,
    sign_s: float,
    verify_per_s: float,
    roots_match: bool,
) -> dict[str, Any]:
    """The benchmark's JSON line (the same keys for every backend)."""
    return {
        "bench": "ledger",
        "suite": suite,
        "txs": txs,
        "block_txs": block_txs,
        "blocks": blocks,
        "committed_tx_per_s": round(txs / total_s, 1),
        "orderer_tx_per_s": round(txs / ordered_s, 1),
        "client_sign_per_s": round(txs / sign_s, 1),
        "verify_per_s": round(verify_per_s, 1),
        "committed_over_verify": round(txs / total_s / verify_per_s, 4),
        "seconds": round(total_s, 3),
        "replica_state_root_matches": roots_match,
        "cores": os.cpu_count(),
    }


def bench_txs(analysts: list[Identity], chain: str, now: int, txs: int) -> list[SignedTx]:
    """The benchmark's client txs: applications for the set-up datasets, signed by the analysts."""
    return [
        build_tx(
            analysts[i % len(analysts)],
            chain,
            "application.submit",
            {
                "dataset": f"tax/u/d{i % 4}",
                "purpose": f"bench {i}",
                "columns": ["c0", "c1", "c2"],
                "engines": ["tee", "mpc"],
                "expires_at": now + 10**9,
                "max_uses": 5,
                "versions": "latest",
            },
        )
        for i in range(txs)
    ]


def setup_txs(backend: LedgerBackend, tax: Identity, bank: Identity, analysts: list[Identity]) -> None:
    """A unit, four datasets and the analysts' member records (before the timed part)."""
    from ..interfaces import sdk

    sdk.create_unit(backend, tax, "u", "Unit")
    for i in range(4):
        sdk.register_dataset(backend, tax, unit="u", name=f"d{i}", title=f"D{i}", kind="table",
                             schema=_SCHEMA, row_count=1000, content_digest=f"{i:064x}")  # fmt: skip
    for i, a in enumerate(analysts):
        sdk.add_member(backend, bank, a, name=f"analyst {i}", roles=["analyst"])


def run_ledger_bench(
    *, txs: int, block_txs: int = 2000, workdir: Path | None = None, suite: str = "default", clients: int = 8
) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-able figures (printed last by the CLI)."""
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="confide-bench-")
        workdir = Path(tmp.name)
    d = workdir / "ledger"
    print(f"measuring raw {suite} signature verification on one core ...", flush=True)
    verify_per_s = verify_rate(suite)
    print(f"setting up consortium and signing {txs} client txs ({clients} clients) ...", flush=True)
    led, analysts = _setup(d, suite, clients, block_txs)
    now = led.backend.head().time
    t0 = time.perf_counter()
    signed = bench_txs(analysts, "bench", now, txs)
    sign_s = time.perf_counter() - t0
    start_height = led.backend.head().height
    final_height = start_height + -(-txs // block_txs)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(
        target=_replica_main,
        args=(
            str(d / "genesis.json"),
            str(d / "chain.sqlite"),
            str(workdir / "replica.sqlite"),
            final_height,
            out,
        ),
    )
    proc.start()
    out.get(timeout=120)  # replica ready (caught up with the set-up blocks)
    print(
        f"ordering {txs} txs into blocks of {block_txs}; replica verifying in another process ...", flush=True
    )
    t_start = time.perf_counter()
    orderer = led.backend.orderer
    for i, stx in enumerate(signed, 1):
        orderer.submit(stx)
        if i % block_txs == 0:
            print(f"  ordered {i}/{txs}", flush=True)
    orderer.cut()
    t_ordered = time.perf_counter()
    msg = out.get(timeout=600)
    proc.join(timeout=60)
    t_end = msg[1]
    orderer_root = led.db.state_root(led.genesis.crypto)
    led.close()
    if tmp is not None:
        tmp.cleanup()
    total = t_end - t_start
    return figures(txs=txs, block_txs=block_txs, blocks=final_height - start_height, suite=suite,
                   ordered_s=t_ordered - t_start, total_s=total, sign_s=sign_s, verify_per_s=verify_per_s,
                   roots_match=msg[2] == orderer_root)  # fmt: skip
