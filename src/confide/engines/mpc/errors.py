"""Errors of the MPC engine. Messages name the step and the peer, never share values."""

from __future__ import annotations


class MpcError(Exception):
    """Base class of every MPC engine error."""


class MpcProtocolError(MpcError):
    """A peer sent bytes that do not parse or do not fit the protocol step (malformed, truncated,
    wrong session, replayed or reordered, wrong shape, disagreeing dealer requests)."""


class MpcTimeoutError(MpcError):
    """A peer did not answer within the transport's deadline."""


class MpcAbortedError(MpcError):
    """This party stopped because another party of the session failed."""
