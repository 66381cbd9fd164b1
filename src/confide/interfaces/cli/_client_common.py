"""Shared options and plumbing of ``confide client``: node URL, key, errors, connection."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer
from rich.markup import escape

from ...crypto import load_identity
from ..client import ApiCallError, Client
from ._common import fail, friendly

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
