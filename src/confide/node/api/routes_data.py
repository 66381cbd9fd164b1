"""Data routes: profile and bind a source, synthetic previews, enforcement decisions.

A source is profiled by *this* node (schema, row count, content digest) and
bound locally to the dataset id; only the profile goes back to the caller, who
signs the ``dataset.register`` / ``dataset.version`` tx with their own key.
File sources must lie inside the node's data folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..connectors import ConnectorError, open_connector, synthetic_preview
from ..enforcement import authorize_use
from ..services import ServiceError, call_service
from ..sources import OutsideDataDir, confine
from .deps import Ctx, Me, Principal, require_roles
from .errors import ApiError

router = APIRouter(prefix="/v1")
Owner = Depends(require_roles("unit_owner", "org_admin"))


class SourceIn(BaseModel):
    dataset: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}/[a-z0-9][a-z0-9_-]{0,62}/[a-z0-9][a-z0-9_-]{0,62}$"
    )
    source: dict[str, Any]


class ServiceCallIn(BaseModel):
    grant: str = Field(pattern=r"^[0-9a-f]{64}$")
    params: dict[str, str | int | bool] = Field(default_factory=dict)
    fields: list[str] | None = None


class UseIn(BaseModel):
    dataset: str
    grant: str = Field(pattern=r"^[0-9a-f]{64}$")
    engine: str
    columns: list[str] = Field(min_length=1)
    min_height: int = -1


@router.post("/sources")
def bind_source(body: SourceIn, ctx: Ctx, me: Principal = Owner) -> dict[str, Any]:
    """Profile a source and bind it to a dataset id of this org; returns what goes on the ledger."""
    if body.dataset.split("/")[0] != ctx.config.org:
        raise ApiError(403, "WRONG_ORG", f"this node binds datasets of org {ctx.config.org!r} only")
    try:
        spec = confine(Path(ctx.config.data_dir), body.source)
    except OutsideDataDir as exc:
        raise ApiError(403, "OUTSIDE_DATA_DIR", str(exc)) from None
    try:
        profile = open_connector(spec).describe().to_json()
    except ConnectorError as exc:
        raise ApiError(422, "BAD_SOURCE", str(exc)) from None
    ctx.local.bind_source(body.dataset, profile["content_digest"], body.source, profile)
    return profile


@router.get("/preview/{dataset:path}")
def preview(dataset: str, ctx: Ctx, me: Me, rows: int = 5) -> dict[str, Any]:
    """Synthetic rows generated from the ledger schema and value types — never a real row."""
    ds = ctx.query(f"dataset/{dataset}")
    schema = ds["versions"][-1]["schema"]
    return {"dataset": dataset, "synthetic": True, "rows": synthetic_preview(schema, n=min(rows, 50))}


@router.post("/services/{dataset:path}")
def call(dataset: str, body: ServiceCallIn, ctx: Ctx, me: Me) -> dict[str, Any]:
    """Call an API-type dataset via its owner's node: grant checked, fields projected, usage on the ledger."""
    try:
        return call_service(
            ctx,
            requester=me.key_id,
            dataset=dataset,
            grant_id=body.grant,
            params=body.params,
            fields=body.fields,
        )
    except ServiceError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None


@router.post("/uses")
def check_use(body: UseIn, ctx: Ctx, me: Me) -> dict[str, Any]:
    """Would this node release the named columns to ``engine`` for the caller's grant? Logged.

    Decided on this node's own ledger view, after waiting for ``min_height`` (if given).
    """
    if body.min_height > ctx.replica.height and not ctx.follower.wait_for(body.min_height, 10.0):
        raise ApiError(504, "BEHIND", f"this node has not reached height {body.min_height} yet; retry")
    grant = authorize_use(
        ctx,
        dataset=body.dataset,
        grant_id=body.grant,
        engine=body.engine,
        columns=body.columns,
        requester=me.key_id,
    )
    return {"allowed": True, "grant": grant["id"], "uses_left": grant["max_uses"] - grant["uses"]}
