"""One refusal type for the node's engine steps (TEE, PSI, MPC): a code, a message, an HTTP status.

``code`` is for machines, ``message`` for people, and neither ever carries data. The API turns any
:class:`Refused` into its one error shape (``api/errors.py``), so routes need no handlers of their own.
"""

from __future__ import annotations

__all__ = ["Refused"]


class Refused(Exception):
    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
