"""``confide ledger``: create, inspect, replicate and verify an embedded chain."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from ...ledger.audit import describe_tx
from ...ledger.embedded import ChainDB, Replica, verify_chain
from ...ledger.genesis import load_genesis
from ...ledger.local import OrgSpec, init_workspace
from ._common import DirOpt, console, fail, friendly, open_ledger, print_json

ledger_app = typer.Typer(
    help="Create, inspect, replicate and verify the embedded ledger.", no_args_is_help=True
)


@ledger_app.command("init")
@friendly
def init(
    directory: Path = DirOpt,
    org: list[str] = typer.Option(
        [], "--org", help="Member org as id:Name (repeat). Default: bank, tax, power."
    ),
    chain_id: str = typer.Option("confide-local", help="Chain id (lower-case letters, digits, -_)."),
    suite: str = typer.Option("default", help="Crypto suite: default (Ed25519+SHA-256) or gm (SM2+SM3)."),
) -> None:
    """Create a consortium: keys (0600 PEM), genesis.json and block 0."""
    from ...scenarios.foundation import DEMO_ORGS

    specs = list(DEMO_ORGS)
    if org:
        specs = []
        for item in org:
            oid, sep, name = item.partition(":")
            if not sep or not name:
                fail(f"--org {item!r} is not id:Name", "example: --org bank:'Bank of Example'")
            specs.append(OrgSpec(oid, name))
    init_workspace(directory, specs, chain_id=chain_id, suite=suite)
    console.print(
        f"created ledger [bold]{chain_id}[/] in {directory} with orgs: {', '.join(s.id for s in specs)}"
    )
    console.print(f"keys are in {directory / 'keys'} (mode 0600); genesis in {directory / 'genesis.json'}")


@ledger_app.command("status")
@friendly
def status(directory: Path = DirOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Height, head hash, tx count and state root."""
    led = open_ledger(directory)
    head = led.backend.head()
    info = {
        "chain_id": led.genesis.chain_id,
        "suite": led.genesis.suite,
        "height": head.height,
        "head_hash": head.hash,
        "txs": sum(1 for _ in led.db.iter_txs()),
        "state_root": led.db.state_root(led.genesis.crypto),
        "genesis_digest": led.genesis.digest(),
    }
    led.close()
    if as_json:
        print_json(info)
        return
    for k, v in info.items():
        console.print(f"[bold]{k:>15}[/]  {v}")


@ledger_app.command("blocks")
@friendly
def blocks(
    directory: Path = DirOpt,
    start: int = typer.Option(0, "--from", help="First height to list."),
    limit: int = typer.Option(20, help="How many blocks."),
) -> None:
    """List blocks: height, time, tx count, hash."""
    led = open_ledger(directory)
    table = Table("height", "time (ms, UTC)", "txs", "hash", "prev")
    for b in led.db.blocks_since(start - 1, limit):
        h = b.header
        table.add_row(
            str(h.height),
            str(h.time),
            str(h.tx_count),
            b.block_hash(led.genesis.crypto)[:16],
            h.prev_hash[:16],
        )
    led.close()
    console.print(table)


@ledger_app.command("show")
@friendly
def show(ref: str = typer.Argument(..., help="A block height or a tx id."), directory: Path = DirOpt) -> None:
    """Show one block (by height) or one tx (by id) with its inclusion proof."""
    led = open_ledger(directory)
    try:
        if ref.isdigit():
            block = led.db.get_block(int(ref))
            if block is None:
                fail(f"no block at height {ref}", "see 'confide ledger status' for the head height")
            assert block is not None
            rows = led.db.txs_in_block(int(ref))
            print_json(
                {
                    "header": block.header.to_json(),
                    "hash": block.block_hash(led.genesis.crypto),
                    "txs": [
                        {"tx_id": r["tx_id"], "type": r["type"], "signer": r["signer"], "code": r["code"]}
                        for r in rows
                    ],
                }
            )
            return
        row = led.db.find_tx(ref)
        if row is None:
            fail(f"no tx {ref} on this chain")
        assert row is not None
        body = json.loads(row["body"])
        print_json(
            {
                "tx_id": row["tx_id"],
                "block": row["height"],
                "index": row["idx"],
                "outcome": {"code": row["code"], "reason": row["reason"]},
                "summary": describe_tx(row["type"], body["payload"]),
                "body": body,
                "events": row["events"],
                "proof": led.backend.proof(ref).to_json(),
            }
        )
    finally:
        led.close()


@ledger_app.command("verify")
@friendly
def verify(
    directory: Path = DirOpt,
    db: Path | None = typer.Option(None, help="Verify this store instead of DIR/chain.sqlite."),
) -> None:
    """Re-check the whole chain from genesis; name the first bad block. Exit 1 if bad."""
    genesis = load_genesis(directory / "genesis.json")
    path = db or directory / "chain.sqlite"
    if not path.exists():
        fail(f"no chain store at {path}")
    store = ChainDB(path, readonly=True)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("verifying blocks", total=None)
        report = verify_chain(
            store, genesis, lambda done, total: bar.update(task, completed=done, total=total)
        )
    store.close()
    if report.ok:
        console.print(
            f"[green]OK[/] {report.blocks} blocks, {report.txs} txs verified "
            f"(orderer signatures, hash links, Merkle roots, tx signatures, replayed outcomes)\n"
            f"state root {report.state_root}"
        )
        return
    where = f"first bad block: {report.first_bad_block}" if report.first_bad_block is not None else "state"
    fail(
        f"chain verification FAILED — {where}: {report.problem}",
        "do not trust this copy; restore it from a replica",
    )


@ledger_app.command("replicate")
@friendly
def replicate(
    to: Path = typer.Option(..., "--to", help="Replica store to create or bring up to date."),
    directory: Path = DirOpt,
) -> None:
    """Sync a replica store from the chain, verifying every block; print its state root."""
    genesis = load_genesis(directory / "genesis.json")
    source = ChainDB(directory / "chain.sqlite", readonly=True)
    replica = Replica(ChainDB(to), genesis)
    applied = 0
    while True:
        batch = source.blocks_since(replica.height, 200)
        if not batch:
            break
        for block in batch:
            replica.apply_block(block)
            applied += 1
    console.print(
        f"replica at height {replica.height} (+{applied} blocks); state root {replica.state_root()}"
    )
