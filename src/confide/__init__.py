"""Confide: trusted data collaboration on a permissioned ledger.

The front door. Typical use::

    from confide import Identity, LocalLedger, apply_for, approve
    led = LocalLedger(".confide")
    app = apply_for(led.backend, led.key("bank-admin"), dataset="tax/collection/filings", ...)

Layers (import only downward): ``crypto`` → ``ledger`` → (node, engines: later
issues) → ``interfaces`` (CLI, SDK). Internals live in the sub-packages.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type checkers see the real names; at run time they load on first use
    from .crypto import Identity, load_identity
    from .interfaces.client import Client
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

# Lazy: ``import confide`` loads nothing else, so an enclave process that runs
# ``python -m confide.engines.tee.enclave`` executes only the modules it measures.
_LAZY = {
    "Identity": ".crypto",
    "load_identity": ".crypto",
    "Genesis": ".ledger",
    "LedgerBackend": ".ledger",
    "Receipt": ".ledger",
    "TxRefused": ".ledger",
    "load_genesis": ".ledger",
    "open_backend": ".ledger",
    "LocalLedger": ".ledger.local",
    "init_workspace": ".ledger.local",
    "Client": ".interfaces.client",
}
_SDK = [
    "add_member",
    "apply_for",
    "approve",
    "create_unit",
    "decide_release",
    "finish_run",
    "publish_version",
    "register_dataset",
    "reject",
    "revoke",
    "start_run",
    "submit_task",
]
_LAZY.update({name: ".interfaces.sdk" for name in _SDK})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'confide' has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)


__version__ = "0.1.0"

__all__ = [
    "Client",
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
