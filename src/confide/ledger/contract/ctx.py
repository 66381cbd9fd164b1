"""Execution context handed to every handler: state overlay, tx, block facts.

Helpers here encode the permission vocabulary once (who is a member, who owns
a unit, who administers an org) so handlers read like the policy they enforce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..codes import Code, Reject
from ..tx import Tx
from .state import Overlay

__all__ = ["BlockInfo", "Ctx", "dataset_key", "effective_grant_status"]


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """What the contract may know about the block: height and time, nothing else."""

    height: int
    time: int


def dataset_key(dataset_id: str) -> str:
    return f"dataset/{dataset_id}"


def effective_grant_status(app: dict[str, Any], now: int) -> str:
    """Stored status, except that an approved grant past its expiry reads 'expired'."""
    if app["status"] == "approved" and now >= app["expires_at"]:
        return "expired"
    return str(app["status"])


@dataclass(slots=True)
class Ctx:
    state: Overlay
    tx: Tx
    block: BlockInfo
    events: list[dict[str, Any]] = field(default_factory=list)
    _member: dict[str, Any] | None = None

    @property
    def now(self) -> int:
        return self.block.time

    def emit(self, kind: str, **attrs: Any) -> None:
        self.events.append({"type": kind, **attrs})

    def member(self) -> dict[str, Any]:
        if self._member is None:
            m = self.state.get(f"member/{self.tx.signer}")
            if m is None or not m["active"]:
                raise Reject(Code.UNKNOWN_SIGNER, "signer is not an active member key")
            self._member = m
        return self._member

    @property
    def org(self) -> str:
        return str(self.member()["org"])

    def has_role(self, role: str) -> bool:
        return role in self.member()["roles"]

    def is_org_admin(self, org: str) -> bool:
        return self.org == org and self.has_role("org_admin")

    def is_unit_owner(self, org: str, unit: str) -> bool:
        m = self.member()
        return m["org"] == org and "unit_owner" in m["roles"] and m.get("unit") == unit

    def require(self, ok: bool, reason: str) -> None:
        if not ok:
            raise Reject(Code.FORBIDDEN, reason)

    def load(self, key: str, what: str) -> dict[str, Any]:
        obj = self.state.get(key)
        if obj is None:
            raise Reject(Code.NOT_FOUND, f"{what} {key.split('/', 1)[1]!r} does not exist")
        return obj

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        return self.load(dataset_key(dataset_id), "dataset")
