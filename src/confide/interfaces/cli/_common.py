"""Shared CLI plumbing: console, error reporting, opening a workspace."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from ...crypto import ConfideCryptoError
from ...ledger import LedgerError, TxRefused
from ...ledger.local import LocalLedger

# Wide enough for audit tables when output is piped (CI logs, make demo).
console = Console(width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, soft_wrap=True)
P = ParamSpec("P")
R = TypeVar("R")

DirOpt = typer.Option(Path(".confide"), "--dir", "-d", help="Ledger workspace folder.")


def fail(message: str, hint: str = "") -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    if hint:
        err_console.print(f"[yellow]what to do:[/] {hint}")
    raise typer.Exit(1)


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn domain errors into one clear message and exit code 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TxRefused as exc:
            fail(f"the ledger refused the transaction: {exc.name}: {exc.reason}", "nothing was changed")
        except (LedgerError, ConfideCryptoError) as exc:
            fail(str(exc))
        raise AssertionError("unreachable")

    return wrapper


def open_ledger(directory: Path) -> LocalLedger:
    if not (directory / "genesis.json").exists():
        fail(f"no ledger in {directory}", f"create one with: confide ledger init --dir {directory}")
    return LocalLedger(directory)


def print_json(obj: Any) -> None:
    console.print_json(json.dumps(obj, ensure_ascii=False))
