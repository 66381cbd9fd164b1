"""Catalog, membership and authorization commands against a local ledger.

``confide catalog ...``, ``confide member add``, ``confide apply``,
``confide approve|reject|revoke``, ``confide applications``, ``confide audit``.
Every command signs with ``--as`` (a key file, or a short name under DIR/keys).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import typer
from rich.table import Table
from rich.tree import Tree

from ...crypto import Identity
from ...ledger.audit import audit_trail
from .. import sdk
from ._common import DirOpt, console, fail, friendly, open_ledger, print_json

AsOpt = typer.Option(..., "--as", help="Signing key: a PEM path or a name in DIR/keys (e.g. tax-admin).")
catalog_app = typer.Typer(help="Browse and manage the org → unit → dataset catalog.", no_args_is_help=True)
member_app = typer.Typer(help="Manage member keys and roles of your org.", no_args_is_help=True)


def _now(led) -> int:  # type: ignore[no-untyped-def]
    return int(led.backend.head().time)


@catalog_app.command("list")
@friendly
def catalog_list(directory: Path = DirOpt) -> None:
    """Show the catalog tree across the consortium."""
    led = open_ledger(directory)
    tree = Tree(f"[bold]{led.genesis.name}[/]")
    for org in led.backend.orderer.replica.contract.query(led.backend.orderer.replica.state, "catalog", 0):
        o = tree.add(f"[bold cyan]{org['id']}[/] {org['name']}")
        for unit in org["units"]:
            u = o.add(f"[magenta]{unit['id']}[/] {unit['name']}")
            for d in unit["datasets"]:
                u.add(
                    f"{d['id']}  [dim]{d['kind']}, v{d['version']}, {d['rows']:,} rows, {d['visibility']}[/]"
                )
    led.close()
    console.print(tree)


def _query(directory: Path, path: str) -> object:
    led = open_ledger(directory)
    try:
        r = led.backend.orderer.replica
        return r.contract.query(r.state, path, _now(led))
    except LookupError as exc:
        fail(str(exc))
    finally:
        led.close()
    return None


@catalog_app.command("show")
@friendly
def catalog_show(dataset: str, directory: Path = DirOpt) -> None:
    """Show one dataset's metadata, versions and policy (never data rows)."""
    print_json(_query(directory, f"dataset/{dataset}"))


@catalog_app.command("unit-create")
@friendly
def unit_create(unit: str, name: str, who: str = AsOpt, directory: Path = DirOpt) -> None:
    """Create a unit (department) in the signer's org. Org admins only."""
    led = open_ledger(directory)
    r = sdk.create_unit(led.backend, led.key(who), unit, name)
    led.close()
    console.print(f"unit {unit} created in block {r.height}")


def _parse_schema(spec: str) -> list[dict[str, object]]:
    cols = []
    for part in spec.split(","):
        name, sep, typ = part.strip().partition(":")
        if not sep or not name or not typ:
            fail(f"schema item {part!r} is not name:type", "example: --schema credit_code:string,year:int32")
        cols.append({"name": name, "type": typ, "nullable": True, "description": ""})
    return cols


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@catalog_app.command("register")
@friendly
def register(
    unit: str = typer.Option(..., help="Owning unit in the signer's org."),
    name: str = typer.Option(..., help="Dataset name (lower-case id)."),
    title: str = typer.Option(..., help="Human title."),
    schema: str = typer.Option(..., help="Columns as name:type,name:type"),
    rows: int = typer.Option(..., help="Row count."),
    kind: str = typer.Option("table", help="table, document, files or api."),
    file: Path | None = typer.Option(None, help="Compute the content digest from this file."),
    digest: str | None = typer.Option(None, help="Content digest (64 hex) if no --file."),
    levels: str = typer.Option("unit", help="Approval levels: unit, org or unit,org."),
    who: str = AsOpt,
    directory: Path = DirOpt,
) -> None:
    """Register a dataset's metadata (schema, rows, digest). The data stays with you."""
    if (file is None) == (digest is None):
        fail("give exactly one of --file and --digest")
    if file is not None and not file.exists():
        fail(f"{file} does not exist")
    content = _file_digest(file) if file is not None else str(digest)
    led = open_ledger(directory)
    r = sdk.register_dataset(
        led.backend, led.key(who), unit=unit, name=name, title=title, kind=kind,
        schema=_parse_schema(schema), row_count=rows, content_digest=content,
        approval_levels=levels.split(","),
    )  # fmt: skip
    led.close()
    console.print(f"dataset registered in block {r.height} (tx {r.tx_id[:16]})")


@member_app.command("add")
@friendly
def member_add(
    name: str = typer.Option(..., help="Member's display name."),
    role: list[str] = typer.Option(..., help="org_admin, unit_owner, analyst or auditor (repeat)."),
    unit: str | None = typer.Option(None, help="Unit, for a unit_owner."),
    key_out: Path = typer.Option(..., help="Where to write the new member's private key (0600)."),
    who: str = AsOpt,
    directory: Path = DirOpt,
) -> None:
    """Create a key for a new member of the signer's org and register it."""
    if key_out.exists():
        fail(f"{key_out} exists; refusing to overwrite a key")
    led = open_ledger(directory)
    ident = Identity.generate(led.genesis.suite)
    r = sdk.add_member(led.backend, led.key(who), ident, name=name, roles=role, unit=unit)
    ident.save(key_out)
    led.close()
    console.print(f"member {name} ({ident.key_id[:16]}) added in block {r.height}; key in {key_out}")


def apply(
    dataset: str,
    purpose: str = typer.Option(..., help="Why you need the data."),
    columns: str = typer.Option(..., help="Comma-separated columns."),
    engines: str = typer.Option("tee", help="Comma-separated engines: tee, psi, mpc, fl."),
    days: int = typer.Option(30, help="Grant lifetime in days (block time)."),
    max_uses: int = typer.Option(1, help="How many runs the grant allows."),
    who: str = AsOpt,
    directory: Path = DirOpt,
) -> None:
    """Apply to use a dataset; prints the application (grant) id."""
    led = open_ledger(directory)
    r = sdk.apply_for(
        led.backend, led.key(who), dataset=dataset, purpose=purpose, columns=columns.split(","),
        engines=engines.split(","), expires_at=_now(led) + days * 86_400_000, max_uses=max_uses,
    )  # fmt: skip
    led.close()
    console.print(f"application {r.tx_id} submitted in block {r.height}")


def approve(
    application: str,
    level: str = typer.Option("unit", help="Approval level you decide at: unit or org."),
    who: str = AsOpt,
    directory: Path = DirOpt,
) -> None:
    """Approve an application at your level."""
    led = open_ledger(directory)
    r = sdk.approve(led.backend, led.key(who), application, level)
    led.close()
    console.print(f"approved at level {level} in block {r.height}")


def reject(
    application: str,
    level: str = typer.Option("unit", help="Approval level you decide at."),
    reason: str = typer.Option("", help="Why."),
    who: str = AsOpt,
    directory: Path = DirOpt,
) -> None:
    """Reject an application."""
    led = open_ledger(directory)
    r = sdk.reject(led.backend, led.key(who), application, level, reason)
    led.close()
    console.print(f"rejected in block {r.height}")


def revoke(
    application: str,
    reason: str = typer.Option(..., help="Why the grant is revoked."),
    who: str = AsOpt,
    directory: Path = DirOpt,
) -> None:
    """Revoke a grant (dataset owner side); later tasks and runs under it are refused."""
    led = open_ledger(directory)
    r = sdk.revoke(led.backend, led.key(who), application, reason)
    led.close()
    console.print(f"revoked in block {r.height}")


def applications(
    status: str | None = typer.Option(None, help="Filter by status."), directory: Path = DirOpt
) -> None:
    """List applications and grants with their effective status and uses left."""
    apps = _query(directory, "applications" + (f"?status={status}" if status else ""))
    table = Table("id", "dataset", "applicant org", "status", "uses left", "engines", "columns")
    for a in apps:  # type: ignore[attr-defined]
        table.add_row(a["id"][:16], a["dataset"], a["applicant_org"], a["status"], str(a["uses_left"]),
                      ",".join(a["engines"]), ",".join(a["columns"]))  # fmt: skip
    console.print(table)


def audit(directory: Path = DirOpt) -> None:
    """The audit trail: every tx, who signed it, in which block, with its outcome."""
    led = open_ledger(directory)
    print_audit(audit_trail(led.db))
    led.close()


def print_audit(rows: list[dict[str, object]]) -> None:
    table = Table("block", "time", "org", "who", "action", "what", "ok")
    for r in rows:
        table.add_row(str(r["height"]), str(r["time"]), str(r["org"]), str(r["who"]), str(r["type"]),
                      str(r["what"]), "✓" if r["code"] == 0 else f"✗ {r['code']}")  # fmt: skip
    console.print(table)


def register_catalog_commands(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")
    app.add_typer(member_app, name="member")
    for fn in (apply, approve, reject, revoke, applications, audit):
        app.command(fn.__name__)(friendly(fn))
