"""Applications for use and the grants they become.

Lifecycle::

    pending --approve (every required level, in order)--> approved
    pending --reject--> rejected          pending/approved --withdraw--> withdrawn
    pending/approved --revoke (owner side)--> revoked
    approved --(block time >= expires_at)--> expired   (derived, see ctx)
    approved --(uses == max_uses)--> exhausted          (written by run.start)

The dataset's policy names the approval levels: ``unit`` is decided by an owner
of the dataset's unit, ``org`` by the owning org's admin, in that order. Nobody
approves their own application.
"""

from __future__ import annotations

from typing import Any

from ..codes import Code, Reject
from .catalog import can_manage, visible_to
from .ctx import Ctx, effective_grant_status
from .models import ApplicationDecide, ApplicationRevoke, ApplicationSubmit

__all__ = [
    "application_approve",
    "application_reject",
    "application_revoke",
    "application_submit",
    "application_withdraw",
    "check_grant_use",
    "consume_use",
    "require_live",
]


def _app(ctx: Ctx, app_id: str) -> dict[str, Any]:
    return ctx.load(f"app/{app_id}", "application")


def application_submit(ctx: Ctx, p: ApplicationSubmit) -> None:
    ctx.require(
        ctx.has_role("analyst") or ctx.has_role("org_admin"),
        "only an analyst or org admin applies for data",
    )
    ds = ctx.dataset(p.dataset)
    if not visible_to(ds, ctx.org):
        raise Reject(Code.NOT_VISIBLE, f"dataset {p.dataset} is not visible to org {ctx.org}")
    latest = ds["versions"][-1]
    known = {c["name"] for c in latest["schema"]}
    unknown = sorted(set(p.columns) - known)
    if unknown:
        raise Reject(Code.OUT_OF_SCOPE, f"columns not in the dataset schema: {unknown}")
    if p.versions != "latest":
        have = {v["version"] for v in ds["versions"]}
        missing = sorted(set(p.versions) - have)
        if missing:
            raise Reject(Code.NOT_FOUND, f"dataset has no versions {missing}")
    if p.expires_at <= ctx.now:
        raise Reject(Code.EXPIRED, "expires_at is not in the future (block time)")
    ctx.state.put(
        f"app/{ctx.tx.tx_id}",
        {
            "id": ctx.tx.tx_id,
            "dataset": p.dataset,
            "owner_org": ds["org"],
            "owner_unit": ds["unit"],
            "applicant": ctx.tx.signer,
            "applicant_org": ctx.org,
            "purpose": p.purpose,
            "columns": sorted(set(p.columns)),
            "engines": sorted(set(p.engines)),
            "versions": p.versions if p.versions == "latest" else sorted(set(p.versions)),
            "expires_at": p.expires_at,
            "max_uses": p.max_uses,
            "uses": 0,
            "required_levels": list(ds["approval_levels"]),
            "approvals": [],
            "status": "pending",
            "submitted_at": ctx.now,
            "history": [{"event": "submitted", "by": ctx.tx.signer, "at": ctx.now}],
        },
    )
    ctx.emit("application.submitted", application=ctx.tx.tx_id, dataset=p.dataset)


def _can_decide(ctx: Ctx, app: dict[str, Any], level: str) -> bool:
    if level == "unit":
        return ctx.is_unit_owner(app["owner_org"], app["owner_unit"])
    return ctx.is_org_admin(app["owner_org"])


def _decide(ctx: Ctx, p: ApplicationDecide, approve: bool) -> None:
    app = _app(ctx, p.application)
    if app["status"] != "pending":
        raise Reject(Code.INVALID_STATE, f"application is {app['status']}, not pending")
    if any(a["level"] == p.level for a in app["approvals"]):
        raise Reject(Code.DUPLICATE_DECISION, f"level {p.level!r} has already approved")
    if p.level not in app["required_levels"]:
        raise Reject(Code.INVALID_STATE, f"the policy has no {p.level!r} approval level")
    nxt = app["required_levels"][len(app["approvals"])]
    if p.level != nxt:
        raise Reject(Code.INVALID_STATE, f"level {nxt!r} must decide before {p.level!r}")
    ctx.require(_can_decide(ctx, app, p.level), f"signer may not decide at level {p.level!r}")
    ctx.require(ctx.tx.signer != app["applicant"], "nobody decides their own application")
    entry = {"level": p.level, "by": ctx.tx.signer, "at": ctx.now, "tx": ctx.tx.tx_id}
    if approve:
        app["approvals"].append(entry)
        if len(app["approvals"]) == len(app["required_levels"]):
            app["status"] = "approved"
            app["approved_at"] = ctx.now
    else:
        app["status"] = "rejected"
        app["rejection"] = {**entry, "reason": p.reason}
    app["history"].append({"event": "approved" if approve else "rejected", **entry})
    ctx.state.put(f"app/{p.application}", app)
    kind = "application.approved" if approve else "application.rejected"
    ctx.emit(kind, application=p.application, level=p.level, status=app["status"])


def application_approve(ctx: Ctx, p: ApplicationDecide) -> None:
    _decide(ctx, p, approve=True)


def application_reject(ctx: Ctx, p: ApplicationDecide) -> None:
    _decide(ctx, p, approve=False)


def application_revoke(ctx: Ctx, p: ApplicationRevoke) -> None:
    app = _app(ctx, p.application)
    ds = ctx.dataset(app["dataset"])
    ctx.require(can_manage(ctx, ds), "only the dataset's unit owner or org admin revokes")
    status = effective_grant_status(app, ctx.now)
    if status not in ("pending", "approved"):
        raise Reject(Code.INVALID_STATE, f"application is {status}; nothing to revoke")
    _close(ctx, app, "revoked", p.reason)


def application_withdraw(ctx: Ctx, p: ApplicationRevoke) -> None:
    app = _app(ctx, p.application)
    ctx.require(ctx.tx.signer == app["applicant"], "only the applicant withdraws")
    status = effective_grant_status(app, ctx.now)
    if status not in ("pending", "approved"):
        raise Reject(Code.INVALID_STATE, f"application is {status}; nothing to withdraw")
    _close(ctx, app, "withdrawn", p.reason)


def _close(ctx: Ctx, app: dict[str, Any], status: str, reason: str) -> None:
    app["status"] = status
    app["history"].append({"event": status, "by": ctx.tx.signer, "at": ctx.now, "reason": reason})
    ctx.state.put(f"app/{app['id']}", app)
    ctx.emit(f"application.{status}", application=app["id"])


_DEAD = {"revoked": Code.REVOKED, "expired": Code.EXPIRED, "exhausted": Code.EXHAUSTED}


def require_live(grant: dict[str, Any], now: int, label: str = "grant") -> None:
    """Refuse unless the grant is approved and neither revoked, expired nor used up at ``now``."""
    status = effective_grant_status(grant, now)
    if status != "approved":
        raise Reject(_DEAD.get(status, Code.INVALID_STATE), f"{label} is {status}")


def consume_use(ctx: Ctx, grant: dict[str, Any]) -> None:
    """Count one use; the last allowed use marks the grant exhausted."""
    grant["uses"] += 1
    if grant["uses"] >= grant["max_uses"]:
        grant["status"] = "exhausted"
    ctx.state.put(f"app/{grant['id']}", grant)


def check_grant_use(
    ctx: Ctx,
    grant_id: str,
    *,
    dataset: str,
    engine: str,
    columns: list[str],
    applicant: str | None = None,
) -> dict[str, Any]:
    """Refuse unless the grant is live and covers this use by ``applicant`` (default: the signer;
    a scheduled run started by the requester org's node uses the task requester's grants)."""
    app = _app(ctx, grant_id)
    if app["dataset"] != dataset:
        raise Reject(Code.OUT_OF_SCOPE, f"grant {grant_id[:16]} is for another dataset")
    if app["applicant"] != (applicant or ctx.tx.signer):
        raise Reject(Code.FORBIDDEN, f"grant {grant_id[:16]} belongs to another applicant")
    require_live(app, ctx.now, f"grant {grant_id[:16]}")
    if engine not in app["engines"]:
        raise Reject(Code.OUT_OF_SCOPE, f"engine {engine!r} not granted (granted: {app['engines']})")
    extra = sorted(set(columns) - set(app["columns"]))
    if extra:
        raise Reject(Code.OUT_OF_SCOPE, f"columns not granted: {extra}")
    return app
