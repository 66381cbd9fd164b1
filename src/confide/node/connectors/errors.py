"""Errors of the data connectors: one root, small leaves that carry their fields.

Every message says what went wrong *and* what to do about it. No message ever
quotes a value read from the source (a cell, a JSON value, a response body):
errors end up in logs and API responses, where a data value must not leak.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ConnectorError",
    "InvalidSpec",
    "MalformedCSV",
    "MalformedJSON",
    "MalformedParquet",
    "MalformedSource",
    "SchemaError",
    "SourceNotFound",
    "SourceUnreachable",
    "UnknownConnector",
    "UnsupportedOperation",
]


class ConnectorError(Exception):
    """Root of every connector failure; ``str()`` gives the problem and the fix."""

    def __init__(self, problem: str, hint: str) -> None:
        self.problem = problem
        self.hint = hint
        super().__init__(f"{problem}; what to do: {hint}")


class UnknownConnector(ConnectorError):
    def __init__(self, name: str, valid: Sequence[str]) -> None:
        self.name = name
        self.valid = tuple(valid)
        super().__init__(f"unknown source type {name!r}", f"use one of: {', '.join(self.valid)}")


class InvalidSpec(ConnectorError):
    """The source spec itself is wrong (missing key, wrong type, failing SQL query)."""


class SourceNotFound(ConnectorError):
    def __init__(self, what: str, hint: str) -> None:
        self.what = what
        super().__init__(f"{what} not found", hint)


class SourceUnreachable(ConnectorError):
    """A database or HTTP endpoint did not answer (refused, timed out, error status)."""

    def __init__(self, target: str, reason: str, hint: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"cannot reach {target}: {reason}", hint)


class MalformedSource(ConnectorError):
    """The bytes of a source do not parse; ``line`` is 1-based when known."""

    def __init__(self, source: str, reason: str, hint: str, *, line: int | None = None) -> None:
        self.source = source
        self.reason = reason
        self.line = line
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"{where}: {reason}", hint)


class MalformedCSV(MalformedSource):
    pass


class MalformedJSON(MalformedSource):
    pass


class MalformedParquet(MalformedSource):
    pass


class SchemaError(ConnectorError):
    """No usable schema: empty source, untyped columns, duplicate or empty column names."""


class UnsupportedOperation(ConnectorError):
    """The connector does not offer this access path (rows from a folder of files, say)."""
