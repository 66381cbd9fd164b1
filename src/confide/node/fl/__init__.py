"""FL runs between org nodes: the coordinator's rounds and each participant's checked answers."""

from .sessions import FlRefused, FlSessions

__all__ = ["FlRefused", "FlSessions"]
