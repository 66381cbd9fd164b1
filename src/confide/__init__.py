"""Confide: trusted data collaboration on a permissioned ledger.

The front door. Typical use::

    from confide import Identity, LocalLedger, apply_for, approve
    led = LocalLedger(".confide")
    app = apply_for(led.backend, led.key("bank-admin"), dataset="tax/collection/filings", ...)

Layers (import only downward): ``crypto`` → ``ledger`` → (node, engines: later
issues) → ``interfaces`` (CLI, SDK). Internals live in the sub-packages.
"""

from .crypto import Identity, load_identity
from .interfaces.sdk import (
    add_member,
    apply_for,
    approve,
    create_unit,
    decide_release,
    finish_run,
    publish_version,
    register_dataset,
    reject,
    revoke,
    start_run,
    submit_task,
)
from .ledger import Genesis, LedgerBackend, Receipt, TxRefused, load_genesis, open_backend
from .ledger.local import LocalLedger, init_workspace

__version__ = "0.1.0"

__all__ = [
    "Genesis",
    "Identity",
    "LedgerBackend",
    "LocalLedger",
    "Receipt",
    "TxRefused",
    "add_member",
    "apply_for",
    "approve",
    "create_unit",
    "decide_release",
    "finish_run",
    "init_workspace",
    "load_genesis",
    "load_identity",
    "open_backend",
    "publish_version",
    "register_dataset",
    "reject",
    "revoke",
    "start_run",
    "submit_task",
]
