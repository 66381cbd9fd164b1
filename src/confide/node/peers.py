"""Links from this node to its peers: one HTTPS client trusting the consortium bundle, and their errors."""

from __future__ import annotations

from typing import Any

import httpx

from ..crypto.tls import client_context
from .context import NodeContext

__all__ = ["error_text", "peer_client"]


def peer_client(ctx: NodeContext, timeout: httpx.Timeout) -> httpx.Client:
    """An HTTP client for node-to-node calls (the consortium's certificates, never the system CAs)."""
    verify: Any = client_context(ctx.config.ca_bundle) if ctx.config.ca_bundle else True
    return httpx.Client(timeout=timeout, verify=verify)


def error_text(resp: httpx.Response) -> str:
    """A peer's refusal as ``CODE: message`` (from the API's one error shape), or its HTTP status."""
    try:
        err: dict[str, Any] = resp.json().get("error", {})
        return f"{err.get('code')}: {err.get('message')}"
    except ValueError:
        return f"HTTP {resp.status_code}"
