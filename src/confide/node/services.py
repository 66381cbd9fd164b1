"""API-type datasets served as data services *through the owner's node*.

The requester never learns the upstream URL. On every call the owner's node:
checks the caller's grant on its own ledger view (engine ``api``, every asked
field granted), calls the upstream endpoint, keeps only the granted fields,
records a ``usage.record`` tx (digests of request and projected response,
signed by the node key) and only after the ledger accepted it hands the
records over. A refused record (revoked or used up meanwhile) returns nothing.

Digests: SHA-256 of compact, key-sorted JSON of ``{"dataset", "grant",
"params", "fields"}`` (request) and of the projected record list (response).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from ..ledger.tx import build_tx
from .connectors.json_file import flat_records, records_at
from .context import NodeContext
from .enforcement import authorize_use

__all__ = ["ServiceError", "call_service"]


class ServiceError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _upstream(spec: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        resp = httpx.get(
            spec["url"],
            params=params,
            headers=spec.get("headers") or {},
            timeout=float(spec.get("timeout", 10)),
        )
        resp.raise_for_status()
        return list(flat_records(records_at(resp.json(), spec.get("records"), "upstream"), "upstream"))
    except (httpx.HTTPError, ValueError) as exc:
        raise ServiceError(
            502, "UPSTREAM_ERROR", f"the data service behind this dataset failed: {exc}"
        ) from None


def call_service(
    ctx: NodeContext,
    *,
    requester: str,
    dataset: str,
    grant_id: str,
    params: dict[str, Any],
    fields: list[str] | None,
) -> dict[str, Any]:
    ds = ctx.query(f"dataset/{dataset}")
    if ds["kind"] != "api":
        raise ServiceError(422, "NOT_A_SERVICE", f"{dataset} is a {ds['kind']} dataset, not an API service")
    with ctx.lock:
        grant = ctx.state.get(f"app/{grant_id}") or {}
    cols = fields or list(grant.get("columns", []))
    authorize_use(
        ctx, dataset=dataset, grant_id=grant_id, engine="api", columns=cols or ["?"], requester=requester
    )
    spec = ctx.local.source_for(dataset, ds["versions"][-1]["content_digest"])
    if spec is None:
        raise ServiceError(409, "NO_SOURCE", "the owner's node has no source bound for this dataset version")
    records = [{c: r.get(c) for c in cols} for r in _upstream(spec, params)]
    request_digest = _digest({"dataset": dataset, "grant": grant_id, "params": params, "fields": cols})
    response_digest = _digest(records)
    payload = {
        "grant": grant_id,
        "dataset": dataset,
        "request_digest": request_digest,
        "response_digest": response_digest,
    }
    receipt = ctx.remote.submit(build_tx(ctx.identity, ctx.genesis.chain_id, "usage.record", payload))
    ctx.follower.nudge()
    ctx.follower.wait_for(receipt.height)
    return {
        "records": records,
        "fields": cols,
        "usage_tx": receipt.tx_id,
        "block": receipt.height,
        "request_digest": request_digest,
        "response_digest": response_digest,
    }
