"""Org structure: units under an org and member keys with roles.

The org's genesis admin key is its first member. Only an org admin adds or
removes members and units of *its own* org; a unit owner is bound to one unit.
"""

from __future__ import annotations

from ...crypto import InvalidKey, Suite
from ..codes import Code, Reject
from .ctx import Ctx
from .models import MemberAdd, MemberRemove, UnitCreate

__all__ = ["member_add", "member_remove", "unit_create"]


def unit_create(ctx: Ctx, p: UnitCreate) -> None:
    org = ctx.org
    ctx.require(ctx.is_org_admin(org), "only an org admin creates units")
    key = f"unit/{org}/{p.unit}"
    if ctx.state.get(key) is not None:
        raise Reject(Code.ALREADY_EXISTS, f"unit {org}/{p.unit} already exists")
    ctx.state.put(
        key,
        {
            "org": org,
            "id": p.unit,
            "name": p.name,
            "description": p.description,
            "created_at": ctx.now,
            "created_tx": ctx.tx.tx_id,
        },
    )
    ctx.emit("unit.created", org=org, unit=p.unit)


def member_add(ctx: Ctx, p: MemberAdd, suite: Suite) -> None:
    org = ctx.org
    ctx.require(ctx.is_org_admin(org), "only an org admin adds members")
    try:
        key_id = suite.load_public(bytes.fromhex(p.public_key)).key_id()
    except (ValueError, InvalidKey) as exc:
        raise Reject(Code.MALFORMED, f"public_key is not a valid {suite.name} key: {exc}") from None
    if ctx.state.get(f"member/{key_id}") is not None:
        raise Reject(Code.ALREADY_EXISTS, f"key {key_id[:16]} is already registered")
    if p.unit is not None and ctx.state.get(f"unit/{org}/{p.unit}") is None:
        raise Reject(Code.NOT_FOUND, f"unit {org}/{p.unit} does not exist")
    ctx.state.put(
        f"member/{key_id}",
        {
            "key_id": key_id,
            "public_key": p.public_key,
            "org": org,
            "name": p.name,
            "roles": sorted(set(p.roles)),
            "unit": p.unit,
            "active": True,
            "added_at": ctx.now,
            "added_tx": ctx.tx.tx_id,
        },
    )
    ctx.emit("member.added", org=org, key_id=key_id, roles=sorted(set(p.roles)))


def member_remove(ctx: Ctx, p: MemberRemove) -> None:
    org = ctx.org
    ctx.require(ctx.is_org_admin(org), "only an org admin removes members")
    if p.key_id == ctx.tx.signer:
        raise Reject(Code.INVALID_STATE, "an admin cannot remove its own key (lock-out guard)")
    m = ctx.load(f"member/{p.key_id}", "member")
    ctx.require(m["org"] == org, "members of another org cannot be removed")
    if not m["active"]:
        raise Reject(Code.INVALID_STATE, "member is already removed")
    ctx.state.put(f"member/{p.key_id}", {**m, "active": False, "removed_at": ctx.now})
    ctx.emit("member.removed", org=org, key_id=p.key_id)
