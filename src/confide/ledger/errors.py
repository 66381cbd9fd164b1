"""Errors of the ledger layer (the contract itself reports codes, see ``codes``)."""

from __future__ import annotations

__all__ = [
    "ChainCorrupted",
    "GenesisError",
    "LedgerError",
    "TxRefused",
    "UnknownBackend",
]


class LedgerError(Exception):
    """Root of every ledger-layer error."""


class GenesisError(LedgerError):
    """The genesis file is missing, malformed or inconsistent."""


class TxRefused(LedgerError):
    """The orderer refused a tx before ordering it; nothing was written."""

    def __init__(self, tx_id: str, code: int, name: str, reason: str) -> None:
        super().__init__(f"tx {tx_id[:16]} refused: {name}: {reason}")
        self.tx_id = tx_id
        self.code = code
        self.name = name
        self.reason = reason


class ChainCorrupted(LedgerError):
    """A stored or received block failed verification."""

    def __init__(self, height: int, reason: str) -> None:
        super().__init__(f"block {height}: {reason}")
        self.height = height
        self.reason = reason


class UnknownBackend(LedgerError, LookupError):
    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__(f"unknown ledger backend {name!r}; valid backends: {', '.join(valid)}")
        self.name = name
        self.valid = valid
