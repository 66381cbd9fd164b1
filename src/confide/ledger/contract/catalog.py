"""The three-level catalog org → unit → dataset, metadata only.

Only a unit owner of the dataset's unit (or its org admin) registers a dataset,
publishes a new version or edits its metadata. The ledger never sees a data
row: it holds schema, row count, content digest, version and policy.
"""

from __future__ import annotations

from typing import Any

from ..codes import Code, Reject
from .ctx import Ctx, dataset_key
from .models import DatasetRegister, DatasetUpdate, DatasetVersion

__all__ = ["can_manage", "dataset_register", "dataset_update", "dataset_version", "visible_to"]


def can_manage(ctx: Ctx, ds: dict[str, Any]) -> bool:
    return ctx.is_unit_owner(ds["org"], ds["unit"]) or ctx.is_org_admin(ds["org"])


def visible_to(ds: dict[str, Any], org: str) -> bool:
    vis = ds["visibility"]
    if org == ds["org"] or vis["mode"] == "consortium":
        return True
    return vis["mode"] == "orgs" and org in vis["orgs"]


def _check_orgs(ctx: Ctx, orgs: list[str]) -> None:
    for o in orgs:
        if ctx.state.get(f"org/{o}") is None:
            raise Reject(Code.NOT_FOUND, f"visibility names unknown org {o!r}")


def _version(ctx: Ctx, p: DatasetRegister | DatasetVersion, number: int) -> dict[str, Any]:
    return {
        "version": number,
        "schema": [c.model_dump() for c in p.schema_],
        "row_count": p.row_count,
        "content_digest": p.content_digest,
        "published_at": ctx.now,
        "tx": ctx.tx.tx_id,
    }


def dataset_register(ctx: Ctx, p: DatasetRegister) -> None:
    org = ctx.org
    if ctx.state.get(f"unit/{org}/{p.unit}") is None:
        raise Reject(Code.NOT_FOUND, f"unit {org}/{p.unit} does not exist")
    ctx.require(
        ctx.is_unit_owner(org, p.unit) or ctx.is_org_admin(org),
        f"only an owner of unit {org}/{p.unit} or the org admin registers its datasets",
    )
    ds_id = f"{org}/{p.unit}/{p.name}"
    if ctx.state.get(dataset_key(ds_id)) is not None:
        raise Reject(Code.ALREADY_EXISTS, f"dataset {ds_id} already exists")
    _check_orgs(ctx, p.visibility.orgs)
    ctx.state.put(
        dataset_key(ds_id),
        {
            "id": ds_id,
            "org": org,
            "unit": p.unit,
            "name": p.name,
            "title": p.title,
            "kind": p.kind,
            "description": p.description,
            "tags": sorted(set(p.tags)),
            "visibility": p.visibility.model_dump(),
            "approval_levels": list(p.approval_levels),
            **({"min_group_size": p.min_group_size} if p.min_group_size is not None else {}),
            "versions": [_version(ctx, p, 1)],
            "registered_by": ctx.tx.signer,
            "registered_at": ctx.now,
        },
    )
    ctx.emit("dataset.registered", dataset=ds_id, version=1, digest=p.content_digest)


def dataset_version(ctx: Ctx, p: DatasetVersion) -> None:
    ds = ctx.dataset(p.dataset)
    ctx.require(can_manage(ctx, ds), "only the dataset's unit owner or org admin publishes versions")
    last = ds["versions"][-1]
    if last["content_digest"] == p.content_digest:
        raise Reject(Code.INVALID_STATE, f"content digest equals version {last['version']}")
    number = last["version"] + 1
    ds["versions"].append(_version(ctx, p, number))
    ctx.state.put(dataset_key(p.dataset), ds)
    ctx.emit("dataset.versioned", dataset=p.dataset, version=number, digest=p.content_digest)


def dataset_update(ctx: Ctx, p: DatasetUpdate) -> None:
    ds = ctx.dataset(p.dataset)
    ctx.require(can_manage(ctx, ds), "only the dataset's unit owner or org admin edits it")
    changes = p.model_dump(exclude_none=True, exclude={"dataset"})
    if not changes:
        raise Reject(Code.MALFORMED, "dataset.update changes nothing")
    if p.visibility is not None:
        _check_orgs(ctx, p.visibility.orgs)
    if "tags" in changes:
        changes["tags"] = sorted(set(changes["tags"]))
    ds.update(changes)
    ctx.state.put(dataset_key(p.dataset), ds)
    ctx.emit("dataset.updated", dataset=p.dataset, fields=sorted(changes))
