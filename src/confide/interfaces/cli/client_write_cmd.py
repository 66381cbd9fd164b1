"""``confide client`` writes: register, apply, approve, reject, revoke, check-use."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .. import sdk
from ..client import ApiCallError
from ._common import console, err_console, fail, print_json

__all__ = ["client_app"]

from ._client_common import (
    DAY_MS,
    JsonOpt,
    KeyOpt,
    MinHeightOpt,
    NodeOpt,
    SuiteOpt,
    _connect,
    _csv,
    api_friendly,
    client_app,
)


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
