"""``confide consortium init``, ``confide orderer start``, ``confide node start``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from ._common import console, fail, friendly

consortium_app = typer.Typer(
    help="Create a consortium: genesis, orderer and one folder per org node.", no_args_is_help=True
)
orderer_app = typer.Typer(help="Run the ordering service.", no_args_is_help=True)
node_app = typer.Typer(help="Run an org node.", no_args_is_help=True)


@consortium_app.command("init")
@friendly
def consortium_init(
    directory: Path = typer.Option(..., "--dir", "-d", help="New consortium folder."),
    org: list[str] = typer.Option(
        [], "--org", help="Member org as id:Name (repeat). Default: bank, tax, power."
    ),
    chain_id: str = typer.Option("confide-local", help="Chain id."),
    suite: str = typer.Option("default", help="Crypto suite: default or gm."),
    base_port: int = typer.Option(8100, help="Orderer port; nodes take the next ports in order."),
    database_url: str | None = typer.Option(
        None, help="Node database URL, may contain {org}. Default SQLite."
    ),
) -> None:
    """Write genesis.json, the orderer folder and one folder per org (keys, node.json, data/)."""
    from ...node.consortium import OrgEntry, init_consortium
    from ...scenarios.foundation import DEMO_ORGS

    entries = [OrgEntry(o.id, o.name, o.credit_code) for o in DEMO_ORGS]
    if org:
        entries = []
        for item in org:
            oid, sep, name = item.partition(":")
            if not sep or not name:
                fail(f"--org {item!r} is not id:Name")
            entries.append(OrgEntry(oid, name))
    init_consortium(
        directory, entries, chain_id=chain_id, suite=suite, base_port=base_port, database_url=database_url
    )
    console.print(
        f"consortium {chain_id} in {directory}: orderer on port {base_port}, nodes: "
        + ", ".join(f"{e.id} ({base_port + 1 + i})" for i, e in enumerate(entries))
    )


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@orderer_app.command("start")
@friendly
def orderer_start(
    directory: Path = typer.Option(..., "--dir", "-d", help="The orderer folder (holds orderer.json)."),
    log_level: str = typer.Option("info", help="debug, info, warning."),
) -> None:
    """Run the solo ordering service (HTTP) until interrupted."""
    import uvicorn

    from ...crypto import load_identity
    from ...ledger.embedded import EmbeddedBackend
    from ...ledger.embedded.service import create_orderer_app
    from ...ledger.genesis import load_genesis

    cfg_path = directory / "orderer.json"
    if not cfg_path.exists():
        fail(f"{cfg_path} not found", "create it with 'confide consortium init'")
    cfg = json.loads(cfg_path.read_text())
    genesis = load_genesis(directory / cfg["genesis"])
    key = load_identity(directory / cfg["key"], genesis.suite)
    backend = EmbeddedBackend(genesis=genesis, orderer_identity=key, path=directory / cfg["store"])
    _logging(log_level)
    console.print(
        f"ordering service for {genesis.chain_id} on {cfg['host']}:{cfg['port']} "
        f"(height {backend.head().height})"
    )
    app = create_orderer_app(backend, batch_ms=int(cfg.get("batch_ms", 20)))
    uvicorn.run(app, host=cfg["host"], port=int(cfg["port"]), log_level=log_level.lower())


@node_app.command("start")
@friendly
def node_start(
    directory: Path = typer.Option(..., "--dir", "-d", help="The org's node folder (holds node.json)."),
    log_level: str = typer.Option("info", help="debug, info, warning."),
) -> None:
    """Run an org node: follow and verify the chain, serve the API, enforce grants."""
    import uvicorn

    from ...node.api import create_node_app
    from ...node.config import ConfigError, load_node_config
    from ...node.context import NodeContext

    try:
        cfg = load_node_config(directory)
    except ConfigError as exc:
        fail(str(exc))
        return
    _logging(log_level)
    ctx = NodeContext.open(cfg)
    console.print(
        f"node {cfg.org} on {cfg.url}, following {cfg.orderer_url} from height {ctx.replica.height}"
    )
    uvicorn.run(create_node_app(ctx), host=cfg.host, port=cfg.port, log_level=log_level.lower())
