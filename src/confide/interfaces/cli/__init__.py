"""The ``confide`` command line."""

from __future__ import annotations

import typer

from .bench_cmd import bench_app
from .catalog_cmd import register_catalog_commands
from .client_cmd import client_app
from .demo_cmd import demo_app
from .ledger_cmd import ledger_app
from .network_cmd import consortium_app, node_app, orderer_app
from .task_cmd import task_app

app = typer.Typer(
    name="confide",
    help=(
        "Confide: trusted data collaboration. Organizations compute together on data none of "
        "them may hand over; a permissioned ledger records the catalog, every grant, task and "
        "release."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(ledger_app, name="ledger")
app.add_typer(bench_app, name="bench")
app.add_typer(demo_app, name="demo")
app.add_typer(consortium_app, name="consortium")
app.add_typer(orderer_app, name="orderer")
app.add_typer(node_app, name="node")
app.add_typer(client_app, name="client")
app.add_typer(task_app, name="task")
register_catalog_commands(app)


def main() -> None:
    app()


__all__ = ["app", "main"]
