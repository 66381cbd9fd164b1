"""``confide client`` reads: status, catalog, show, preview, audit, applications."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from ._common import console, fail, print_json
from .catalog_cmd import print_audit

__all__ = ["client_app"]

from ._client_common import (
    JsonOpt,
    KeyOpt,
    MinHeightOpt,
    NodeOpt,
    SuiteOpt,
    _connect,
    api_friendly,
    client_app,
)


@client_app.command("status")
@api_friendly
def status(
    node: str | None = NodeOpt, key: Path | None = KeyOpt, suite: str = SuiteOpt, as_json: bool = JsonOpt
) -> None:
    """The node's org, chain, height and state root, and who you are to it."""
    with _connect(node, key, suite) as c:
        s = c.status()
        me = c.query(f"member/{c.identity.key_id}")
    s["you"] = {
        "key_id": c.identity.key_id,
        "name": me.get("name"),
        "org": me.get("org"),
        "roles": me.get("roles"),
        "unit": me.get("unit"),
    }
    if as_json:
        print_json(s)
        return
    table = Table(show_header=False, box=None)
    for k in ("org", "chain_id", "suite", "height", "head_hash", "state_root"):
        table.add_row(f"[bold]{k}[/]", escape(str(s[k])))
    table.add_row("[bold]orderer[/]", "ok" if not s["orderer_error"] else escape(str(s["orderer_error"])))
    you = s["you"]
    unit = f", unit {you['unit']}" if you["unit"] else ""
    roles = ", ".join(you["roles"] or [])
    who = f"{you['name']} ({you['key_id'][:16]}) of {you['org']}: {roles}{unit}"
    table.add_row("[bold]you[/]", escape(who))
    console.print(table)


@client_app.command("catalog")
@api_friendly
def catalog(
    node: str | None = NodeOpt, key: Path | None = KeyOpt, suite: str = SuiteOpt, as_json: bool = JsonOpt
) -> None:
    """The org → unit → dataset catalog as the node sees it (metadata only)."""
    with _connect(node, key, suite) as c:
        orgs = c.catalog()
        chain = c.status()["chain_id"]
    if as_json:
        print_json(orgs)
        return
    tree = Tree(f"[bold]{escape(str(chain))}[/]")
    for org in orgs:
        o = tree.add(f"[bold cyan]{escape(org['id'])}[/] {escape(org['name'])}")
        for unit in org["units"]:
            u = o.add(f"[magenta]{escape(unit['id'])}[/] {escape(unit['name'])}")
            for d in unit["datasets"]:
                u.add(
                    f"{escape(d['id'])}  [dim]{escape(d['kind'])}, v{d['version']}, {d['rows']:,} rows, "
                    f"{escape(d['visibility'])}[/]"
                )
    console.print(tree)


@client_app.command("show")
@api_friendly
def show(
    dataset: str = typer.Argument(..., help="Dataset id org/unit/name."),
    min_height: int = MinHeightOpt,
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """One dataset's metadata, latest version and schema (never data rows)."""
    with _connect(node, key, suite) as c:
        ds = c.query(f"dataset/{dataset}", min_height=min_height)
    if as_json:
        print_json(ds)
        return
    v = ds["versions"][-1]
    console.print(f"[bold]{escape(ds['id'])}[/]  {escape(ds['title'])}")
    console.print(
        f"kind {escape(ds['kind'])}, version {v['version']}, {v['row_count']:,} rows, "
        f"visibility {escape(ds['visibility']['mode'])}, approvals {escape(','.join(ds['approval_levels']))}"
    )
    console.print(f"content digest {v['content_digest']}")
    table = Table("column", "type", "nullable", "description")
    for col in v["schema"]:
        table.add_row(
            escape(col["name"]),
            escape(str(col.get("type", ""))),
            "yes" if col.get("nullable", True) else "no",
            escape(str(col.get("description", ""))),
        )
    console.print(table)


@client_app.command("preview")
@api_friendly
def preview(
    dataset: str = typer.Argument(..., help="Dataset id org/unit/name."),
    rows: int = typer.Option(5, "--rows", min=1, max=50, help="How many synthetic rows (at most 50)."),
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Synthetic rows shaped like the dataset's schema — made up, never real data."""
    with _connect(node, key, suite) as c:
        p = c.preview(dataset, rows=rows)
    if as_json:
        print_json(p)
        return
    if p.get("synthetic") is not True:
        fail("the node did not mark this preview as synthetic; not showing it")
    console.print(
        f"[bold yellow]SYNTHETIC PREVIEW[/] of {escape(dataset)}: {len(p['rows'])} made-up rows generated "
        "from the ledger schema. These are not real records."
    )
    cols = list(p["rows"][0]) if p["rows"] else []
    table = Table(*cols)
    for row in p["rows"]:
        table.add_row(*("[dim]null[/]" if row[k] is None else escape(str(row[k])) for k in cols))
    console.print(table)


@client_app.command("audit")
@api_friendly
def audit(
    node: str | None = NodeOpt, key: Path | None = KeyOpt, suite: str = SuiteOpt, as_json: bool = JsonOpt
) -> None:
    """The audit trail from the node's chain copy: every tx, signer, block and outcome."""
    with _connect(node, key, suite) as c:
        rows = c.audit()
    if as_json:
        print_json(rows)
        return
    print_audit(rows)


@client_app.command("applications")
@api_friendly
def applications(
    status: str | None = typer.Option(
        None, "--status", help="Only this status: pending, approved, rejected, revoked, expired..."
    ),
    dataset: str | None = typer.Option(None, "--dataset", help="Only applications for this dataset."),
    min_height: int = MinHeightOpt,
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Applications and grants with their effective status and uses left."""
    with _connect(node, key, suite) as c:
        apps = c.query("applications", min_height=min_height)
    apps = [
        a
        for a in apps
        if (status is None or a["status"] == status) and (dataset is None or a["dataset"] == dataset)
    ]
    if as_json:
        print_json(apps)
        return
    if not apps:
        console.print("no applications" + (f" with status {escape(status)}" if status else ""))
        return
    table = Table("id", "dataset", "applicant org", "status", "uses left", "engines", "columns")
    for a in apps:
        table.add_row(
            a["id"][:16],
            escape(a["dataset"]),
            escape(a["applicant_org"]),
            a["status"],
            str(a["uses_left"]),
            escape(",".join(a["engines"])),
            escape(",".join(a["columns"])),
        )
    console.print(table)


# -- data ------------------------------------------------------------------------------------------
