"""The ``chainmaker`` ledger backend: the ``ConfideLog`` contract on a ChainMaker chain's EVM runtime,
reached through the official Python SDK in its own venv (``worker.py``, run out of process; nothing
here imports the SDK). ``standin.py`` is the protocol-level stand-in of a ChainMaker node the tests
use. See docs/ledger-chainmaker.md."""

from .backend import ChainMakerBackend, ChainMakerNodeLedger, ChainMakerSource, deploy_log, open_log
from .log import AppendReceipt, ChainMakerError, ChainMakerLog, ChainMakerReader, chainmaker_python

__all__ = [
    "AppendReceipt",
    "ChainMakerBackend",
    "ChainMakerError",
    "ChainMakerLog",
    "ChainMakerNodeLedger",
    "ChainMakerReader",
    "ChainMakerSource",
    "chainmaker_python",
    "deploy_log",
    "open_log",
]
