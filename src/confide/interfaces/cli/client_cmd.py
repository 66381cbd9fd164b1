"""``confide client ...``: drive an org node's API through :class:`confide.interfaces.client.Client`.

The network counterpart of the local-ledger commands: every request is signed
with ``--key`` and sent to ``--node`` (or ``CONFIDE_KEY`` / ``CONFIDE_NODE_URL``);
every ledger action is a tx signed here and relayed by the node, which never
sees the key. API errors become one line (code and message) and exit code 1.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from ...crypto import load_identity
from .. import sdk
from ..client import ApiCallError, Client
from ._common import console, err_console, fail, friendly, print_json
from .catalog_cmd import print_audit

__all__ = ["client_app"]

P = ParamSpec("P")
R = TypeVar("R")
DAY_MS = 86_400_000

client_app = typer.Typer(
    help=(
        "Talk to an org node over its API: browse the catalog, register data, apply, approve, "
        "check uses. Requests are signed with your key; the node never holds it."
    ),
    no_args_is_help=True,
)

NodeOpt = typer.Option(
    None,
    "--node",
    envvar="CONFIDE_NODE_URL",
    help="The org node's API URL, e.g. http://127.0.0.1:8101.",
    show_envvar=True,
)
KeyOpt = typer.Option(
    None,
    "--key",
    envvar="CONFIDE_KEY",
    help="Your signing key (PEM file, mode 0600).",
    show_envvar=True,
)
SuiteOpt = typer.Option(
    "default", "--suite", envvar="CONFIDE_SUITE", help="Crypto suite of the chain: default or gm."
)
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of tables.")
MinHeightOpt = typer.Option(
    -1, "--min-height", help="Wait until the node has applied this block (read your own writes)."
)

_HINTS = {
    "UNAUTHENTICATED": "sign with the key of an active member of the consortium (--key / CONFIDE_KEY)",
    "WRONG_ORG": "talk to a node of your own org (--node / CONFIDE_NODE_URL)",
    "WRONG_ROLE": "ask your org admin for a role that allows this",
    "NOT_FOUND": "check the id: 'confide client catalog' and 'confide client applications' list them",
    "BEHIND": "the node is still catching up with the chain; retry in a moment",
    "NOT_APPLIED": "the tx is committed; the node will catch up, retry the read in a moment",
    "BAD_SOURCE": "file paths are relative to the node's data folder (<org>/data)",
    "OUTSIDE_DATA_DIR": "put the file into the node's data folder and give its relative path",
    "NODE_HALTED": "the node stopped trusting its chain copy; read its log",
    "LEDGER_UNAVAILABLE": "the node cannot reach the ordering service; is 'confide orderer start' running?",
}


def _api_fail(exc: ApiCallError) -> None:
    if exc.code == "UNREACHABLE":
        fail(
            escape(exc.message),
            "check --node / CONFIDE_NODE_URL, or start the node with: confide node start --dir <org folder>",
        )
    fail(escape(f"{exc.code}: {exc.message}"), _HINTS.get(exc.code, ""))


def api_friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """:func:`friendly`, plus API errors (code and message) and non-API answers → exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ApiCallError as exc:
            _api_fail(exc)
        except json.JSONDecodeError:
            fail(
                f"the server at {escape(str(kwargs.get('node')))} did not answer like a confide node",
                "check --node / CONFIDE_NODE_URL",
            )
        raise AssertionError("unreachable")

    return friendly(wrapper)


@contextmanager
def _connect(node: str | None, key: Path | None, suite: str) -> Iterator[Client]:
    if not node:
        fail("no node URL given", "pass --node http://HOST:PORT or set CONFIDE_NODE_URL")
    if key is None:
        fail("no signing key given", "pass --key path/to/key.pem or set CONFIDE_KEY")
    assert node is not None and key is not None
    # https nodes: trust the consortium's certificate bundle (certs/bundle.pem), never the system CAs.
    bundle = os.environ.get("CONFIDE_CA_BUNDLE")
    if node.startswith("https://") and not bundle:
        fail(
            "an https node needs the consortium's certificates",
            "set CONFIDE_CA_BUNDLE=<consortium>/certs/bundle.pem",
        )
    client = Client(node, load_identity(key, suite), ca_bundle=bundle or None)
    try:
        yield client
    finally:
        client.close()


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


# -- reads ---------------------------------------------------------------------------------------


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


def _source_spec(
    source_json: str | None, csv: str | None, parquet: str | None, jsonl: str | None
) -> dict[str, Any]:
    given = {
        k: v
        for k, v in (
            ("--source-json", source_json),
            ("--csv", csv),
            ("--parquet", parquet),
            ("--jsonl", jsonl),
        )
        if v is not None
    }
    if len(given) != 1:
        fail(
            "give exactly one source: --source-json, --csv, --parquet or --jsonl",
            'example: --csv filings.csv, or --source-json \'{"type":"csv","path":"filings.csv"}\'',
        )
    (flag, value), *_ = given.items()
    if flag != "--source-json":
        return {"type": flag.removeprefix("--"), "path": value}
    try:
        spec = json.loads(value)
    except json.JSONDecodeError as exc:
        fail(f"--source-json is not valid JSON: {exc}")
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        fail("--source-json must be a JSON object with a string 'type'", '{"type":"csv","path":"x.csv"}')
    return dict(spec)


@client_app.command("register")
@api_friendly
def register(
    unit: str = typer.Option(..., "--unit", help="Owning unit in your org."),
    name: str = typer.Option(..., "--name", help="Dataset name (lower-case id)."),
    title: str = typer.Option(..., "--title", help="Human title."),
    source_json: str | None = typer.Option(
        None, "--source-json", help='Source spec as JSON, e.g. \'{"type":"csv","path":"x.csv"}\'.'
    ),
    csv: str | None = typer.Option(None, "--csv", help="CSV file, relative to the node's data folder."),
    parquet: str | None = typer.Option(None, "--parquet", help="Parquet file, relative to the data folder."),
    jsonl: str | None = typer.Option(None, "--jsonl", help="JSON-lines file, relative to the data folder."),
    levels: str = typer.Option("unit", "--levels", help="Approval levels: unit, org or unit,org."),
    description: str = typer.Option("", "--description", help="Free-text description."),
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Have your node profile a source (schema, rows, digest) and register it. The data stays there."""
    spec = _source_spec(source_json, csv, parquet, jsonl)
    with _connect(node, key, suite) as c:
        org = str(c.status()["org"])
        dataset_id = f"{org}/{unit}/{name}"
        started = time.monotonic()
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as progress:
            progress.add_task(f"the node is profiling {escape(spec.get('path', spec['type']))}…")
            receipt = c.register_dataset(
                org=org,
                unit=unit,
                name=name,
                title=title,
                source=spec,
                approval_levels=_csv(levels),
                description=description,
            )
        elapsed = time.monotonic() - started
        ds = c.query(f"dataset/{dataset_id}", min_height=receipt.height)
    v = ds["versions"][-1]
    out = {
        "dataset": dataset_id,
        "tx_id": receipt.tx_id,
        "height": receipt.height,
        "rows": v["row_count"],
        "columns": [col["name"] for col in v["schema"]],
        "content_digest": v["content_digest"],
        "seconds": round(elapsed, 2),
    }
    if as_json:
        print_json(out)
        return
    console.print(f"registered [bold]{escape(dataset_id)}[/] in block {receipt.height} ({elapsed:.1f} s)")
    console.print(f"  rows     {v['row_count']:,}")
    console.print(f"  columns  {escape(', '.join(out['columns']))}")
    console.print(f"  digest   {v['content_digest']}")
    console.print(f"  tx       {receipt.tx_id}")


# -- grants ----------------------------------------------------------------------------------------


@client_app.command("apply")
@api_friendly
def apply(
    dataset: str = typer.Argument(..., help="Dataset id org/unit/name."),
    purpose: str = typer.Option(..., "--purpose", help="Why you need the data."),
    columns: str = typer.Option(..., "--columns", help="Comma-separated columns."),
    engines: str = typer.Option("tee", "--engines", help="Comma-separated engines: tee, psi, mpc, fl."),
    days: int = typer.Option(30, "--days", min=1, help="Grant lifetime in days."),
    max_uses: int = typer.Option(1, "--max-uses", min=1, help="How many runs the grant allows."),
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Apply to use a dataset; prints the application (grant) id."""
    with _connect(node, key, suite) as c:
        r = sdk.apply_for(
            c.ledger,
            c.identity,
            dataset=dataset,
            purpose=purpose,
            columns=_csv(columns),
            engines=_csv(engines),
            expires_at=int(time.time() * 1000) + days * DAY_MS,
            max_uses=max_uses,
        )
    if as_json:
        print_json({"application": r.tx_id, "height": r.height})
        return
    console.print(f"application {r.tx_id} submitted in block {r.height}")


LevelOpt = typer.Option("unit", "--level", help="The approval level you decide at: unit or org.")


@client_app.command("approve")
@api_friendly
def approve(
    application: str = typer.Argument(..., help="Application id (64 hex)."),
    level: str = LevelOpt,
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Approve an application at your level."""
    with _connect(node, key, suite) as c:
        r = sdk.approve(c.ledger, c.identity, application, level)
        app = c.application(application)
    if as_json:
        print_json({"application": application, "height": r.height, "status": app["status"]})
        return
    console.print(
        f"approved at level {escape(level)} in block {r.height}; application is now {app['status']}"
    )


@client_app.command("reject")
@api_friendly
def reject(
    application: str = typer.Argument(..., help="Application id (64 hex)."),
    level: str = LevelOpt,
    reason: str = typer.Option("", "--reason", help="Why."),
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Reject an application at your level."""
    with _connect(node, key, suite) as c:
        r = sdk.reject(c.ledger, c.identity, application, level, reason)
    if as_json:
        print_json({"application": application, "height": r.height, "status": "rejected"})
        return
    console.print(f"rejected in block {r.height}")


@client_app.command("revoke")
@api_friendly
def revoke(
    application: str = typer.Argument(..., help="Application (grant) id (64 hex)."),
    reason: str = typer.Option(..., "--reason", help="Why the grant is revoked."),
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Revoke a grant (dataset owner side); later uses under it are refused."""
    with _connect(node, key, suite) as c:
        r = sdk.revoke(c.ledger, c.identity, application, reason)
    if as_json:
        print_json({"application": application, "height": r.height, "status": "revoked"})
        return
    console.print(f"revoked in block {r.height}")


@client_app.command("check-use")
@api_friendly
def check_use(
    dataset: str = typer.Option(..., "--dataset", help="Dataset id org/unit/name."),
    grant: str = typer.Option(..., "--grant", help="Your grant (application) id."),
    engine: str = typer.Option("tee", "--engine", help="Engine that would read the data."),
    columns: str = typer.Option(..., "--columns", help="Comma-separated columns to read."),
    min_height: int = MinHeightOpt,
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Ask the dataset owner's node whether it would release these columns under your grant.

    --node must be the node of the org that owns the dataset: it decides on its own
    chain copy and logs the decision. Exit code 0 when allowed, 1 when denied.
    """
    with _connect(node, key, suite) as c:
        c.last_height = min_height
        try:
            r = c.check_use(dataset=dataset, grant=grant, engine=engine, columns=_csv(columns))
        except ApiCallError as exc:
            if exc.code != "USE_DENIED":
                raise
            if as_json:
                print_json({"allowed": False, "reason": exc.message})
            else:
                console.print(f"[bold red]denied[/]: {escape(exc.message)}")
                if "not to this node" in exc.message:
                    err_console.print(
                        "[yellow]what to do:[/] ask the node of the org that owns the dataset (--node)"
                    )
            raise typer.Exit(1) from None
    if as_json:
        print_json(r)
        return
    console.print(
        f"[bold green]allowed[/]: {escape(engine)} may read {escape(columns)} of {escape(dataset)} "
        f"under grant {grant[:16]} ({r['uses_left']} uses left)"
    )
