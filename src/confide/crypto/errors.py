"""Errors of the crypto layer.

At trust boundaries every failure collapses into one opaque error
(:class:`InvalidSignature`) so callers cannot leak *why* a check failed.
"""

from __future__ import annotations

__all__ = [
    "CanonicalEncodingError",
    "ConfideCryptoError",
    "InvalidKey",
    "InvalidSignature",
    "SuiteUnavailable",
    "UnknownSuite",
]


class ConfideCryptoError(Exception):
    """Root of every crypto-layer error."""


class InvalidSignature(ConfideCryptoError):
    """A signature did not verify. Deliberately carries no detail."""

    def __init__(self) -> None:
        super().__init__("signature verification failed")


class InvalidKey(ConfideCryptoError):
    """Key material could not be parsed or does not belong to the suite."""


class CanonicalEncodingError(ConfideCryptoError, ValueError):
    """A value cannot be canonically encoded (float, huge int, bad key, ...)."""


class UnknownSuite(ConfideCryptoError, LookupError):
    """No crypto suite registered under this name."""

    def __init__(self, name: str, valid: list[str]) -> None:
        self.name = name
        self.valid = valid
        super().__init__(f"unknown crypto suite {name!r}; valid suites: {', '.join(valid)}")


class SuiteUnavailable(ConfideCryptoError):
    """The suite exists but its optional dependency is not installed."""
