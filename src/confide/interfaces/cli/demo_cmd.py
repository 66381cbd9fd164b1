"""``confide demo``: runnable scenarios."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from ...ledger.audit import audit_trail, fmt_time
from ...ledger.embedded import ChainDB, Replica, verify_chain
from ...ledger.local import LocalLedger
from ...scenarios.foundation import run_foundation_demo
from ._common import console, friendly
from .catalog_cmd import print_audit

demo_app = typer.Typer(help="Run end-to-end scenarios.", no_args_is_help=True)


@demo_app.command("foundation")
@friendly
def foundation(
    workdir: Path = typer.Option(Path(".demo"), help="Folder for the demo ledger (recreated)."),
) -> None:
    """Three orgs, catalog, application and two-level approval on the embedded ledger."""
    if workdir.exists():
        shutil.rmtree(workdir)
    console.rule("[bold]Confide foundation demo: bank · tax bureau · power company")
    result = run_foundation_demo(workdir, say=lambda s: console.print(f"  {escape(s)}"))
    led = LocalLedger(workdir)
    r = led.backend.orderer.replica
    now = led.backend.head().time

    console.rule("catalog (org → unit → dataset)")
    tree = Tree(f"[bold]{led.genesis.name}[/]")
    for org in r.contract.query(r.state, "catalog", now):
        o = tree.add(f"[bold cyan]{org['id']}[/] {org['name']}")
        for unit in org["units"]:
            u = o.add(f"[magenta]{unit['id']}[/] {unit['name']}")
            for d in unit["datasets"]:
                u.add(f"{d['id']}  [dim]{d['kind']}, v{d['version']}, {d['rows']:,} rows[/]")
    console.print(tree)

    console.rule("the grant")
    grant = r.contract.query(r.state, f"application/{result.grant_id}", now)
    table = Table(show_header=False, box=None)
    for key in ("id", "dataset", "applicant_org", "purpose", "status", "uses_left"):
        table.add_row(f"[bold]{key}[/]", str(grant[key]))
    table.add_row("[bold]columns[/]", ", ".join(grant["columns"]))
    table.add_row("[bold]engines[/]", ", ".join(grant["engines"]))
    table.add_row("[bold]expires[/]", fmt_time(grant["expires_at"]) + " (block time)")
    for a in grant["approvals"]:
        who = r.contract.query(r.state, f"member/{a['by']}", now)["name"]
        table.add_row(f"[bold]approved ({a['level']})[/]", f"{who} at {fmt_time(a['at'])}, tx {a['tx'][:16]}")
    console.print(table)

    console.rule("audit trail")
    print_audit(audit_trail(led.db))

    console.rule("independent replica")
    replica = Replica(ChainDB(workdir / "replica.sqlite"), led.genesis)
    for block in led.db.blocks_since(-1, 10_000):
        replica.apply_block(block)
    ours, theirs = led.db.state_root(led.genesis.crypto), replica.state_root()
    report = verify_chain(led.db, led.genesis)
    console.print(f"orderer state root  {ours}\nreplica state root  {theirs}")
    console.print(f"roots match: {ours == theirs};  'ledger verify': {'OK' if report.ok else report.problem}")
    led.close()
    if ours != theirs or not report.ok:
        raise typer.Exit(1)
