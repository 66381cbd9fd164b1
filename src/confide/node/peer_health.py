"""The consortium as this node sees it: every org's node, its height, head hash and state root.

This node's own entry comes from its context; each peer's from its unauthenticated
``/v1/health``, fetched in parallel with a short timeout. A peer that does not
answer is reported (``reachable: false`` and why), never raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from .context import NodeContext
from .peers import peer_client

__all__ = ["PEER_TIMEOUT_S", "consortium_nodes", "probe_health", "same_state"]

PEER_TIMEOUT_S = 3.0


def _entry(org: str, url: str | None, *, own: bool = False, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "org": org,
        "url": url,
        "self": own,
        "reachable": False,
        "height": None,
        "head_hash": None,
        "state_root": None,
        "error": None,
    }
    return base | fields


def _own(ctx: NodeContext) -> dict[str, Any]:
    with ctx.lock:
        root = ctx.replica.state_root()
        height, head = ctx.replica.height, ctx.replica.head_hash
    return _entry(
        ctx.config.org,
        ctx.config.url,
        own=True,
        reachable=True,
        height=height,
        head_hash=head,
        state_root=root,
    )


def _refusal(resp: httpx.Response) -> str:
    """``HTTP 503: NODE_HALTED: ...`` from the API's one error shape, else just the status."""
    try:
        err = resp.json()["error"]
        return f"HTTP {resp.status_code}: {err['code']}: {err['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {resp.status_code}"


def probe_health(http: httpx.Client, org: str, url: str) -> dict[str, Any]:
    """One peer's entry from its ``/v1/health``; any failure becomes ``reachable: false`` and why."""
    try:
        resp = http.get(url.rstrip("/") + "/v1/health")
    except httpx.HTTPError as exc:
        return _entry(org, url, error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if resp.status_code != 200:
        return _entry(org, url, error=_refusal(resp))
    try:
        h = resp.json()
        answered_as = h.get("org")
        height = h["height"]
    except (ValueError, KeyError, AttributeError):
        return _entry(org, url, error="the health answer is not the node API's JSON")
    if answered_as != org:
        return _entry(org, url, error=f"the node at this URL says it serves org {answered_as!r}")
    return _entry(
        org,
        url,
        reachable=True,
        height=height,
        head_hash=h.get("head_hash"),
        state_root=h.get("state_root"),
    )


def same_state(nodes: Sequence[dict[str, Any]]) -> bool | None:
    """False if two reachable nodes at the same height report different state roots; True if all
    reachable nodes (at least two) report one height and one root; None otherwise (catching up,
    or too few nodes answered to compare)."""
    seen = [(n["height"], n["state_root"]) for n in nodes if n["reachable"] and n["state_root"] is not None]
    roots_at: dict[int, set[str]] = {}
    for height, root in seen:
        roots_at.setdefault(height, set()).add(root)
    if any(len(roots) > 1 for roots in roots_at.values()):
        return False
    if len(seen) < 2 or len(roots_at) > 1:
        return None
    return True


def consortium_nodes(ctx: NodeContext) -> dict[str, Any]:
    """``{"nodes": [...], "same_state": bool | None}``: every org of the consortium (from the ledger's
    ``org/`` records and this node's configured peers), this node first, the others by org id."""
    orgs = {str(o["id"]) for o in ctx.query("orgs")} | set(ctx.config.peers)
    orgs.discard(ctx.config.org)
    peers = sorted(orgs)
    urls = {org: ctx.config.peers.get(org) for org in peers}
    entries = [_own(ctx)]
    linked = [org for org in peers if urls[org]]
    if linked:
        with (
            peer_client(ctx, httpx.Timeout(PEER_TIMEOUT_S)) as http,
            ThreadPoolExecutor(max_workers=len(linked), thread_name_prefix="peer-health") as pool,
        ):
            probes = {org: pool.submit(probe_health, http, org, str(urls[org])) for org in linked}
            found = {org: f.result() for org, f in probes.items()}
    else:
        found = {}
    for org in peers:
        entries.append(found.get(org) or _entry(org, None, error="no URL for this org in node.json peers"))
    return {"nodes": entries, "same_state": same_state(entries)}
