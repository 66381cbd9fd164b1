"""The ``evm`` ledger backend's chain side: the ``ConfideLog`` contract on any EVM chain (see ``log``)."""

from .log import AppendReceipt, Cursor, DeepReorg, EvmError, EvmLog, LogEntry, LogReader, load_artifact

__all__ = [
    "AppendReceipt",
    "Cursor",
    "DeepReorg",
    "EvmError",
    "EvmLog",
    "LogEntry",
    "LogReader",
    "load_artifact",
]
