"""Result codes of the platform contract and the ledger.

A refusal is a code plus a readable reason, never an exception that escapes
the state machine; the same ordered transactions yield the same codes on every
node. Codes are stable integers: they are stored next to each tx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

__all__ = ["Code", "Reject", "Result"]


class Code(IntEnum):
    OK = 0
    MALFORMED = 1  # payload or envelope does not parse / validate
    BAD_SIGNATURE = 2
    UNKNOWN_SIGNER = 3  # key id not an active member of the consortium
    REPLAYED = 4  # tx id already on the chain
    STALE = 5  # created_at outside the accepted window around block time
    WRONG_CHAIN = 6  # tx signed for another consortium
    UNKNOWN_TYPE = 7
    FORBIDDEN = 8  # signer lacks the role or ownership for this step
    NOT_FOUND = 9
    ALREADY_EXISTS = 10
    INVALID_STATE = 11  # transition not allowed from the current status
    EXPIRED = 12
    EXHAUSTED = 13
    REVOKED = 14
    OUT_OF_SCOPE = 15  # column, engine or version outside the grant
    NOT_VISIBLE = 16  # dataset not visible to the applicant's org
    DUPLICATE_DECISION = 17  # this approver already decided


class Reject(Exception):
    """Raised inside a handler to refuse a tx; the overlay is discarded."""

    def __init__(self, code: Code, reason: str) -> None:
        super().__init__(f"{code.name}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(slots=True)
class Result:
    """Outcome of check/apply for one tx."""

    code: Code = Code.OK
    reason: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    tx_type: str = "?"  # filled in when the body parsed, for the tx index
    signer: str = "?"

    @property
    def ok(self) -> bool:
        return self.code is Code.OK

    def to_json(self) -> dict[str, Any]:
        return {"code": int(self.code), "name": self.code.name, "reason": self.reason}
