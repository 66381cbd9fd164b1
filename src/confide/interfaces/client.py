"""``confide.Client``: the Python SDK for an org node's API.

Every request is signed with the caller's key (RFC 9421 profile); every ledger
action is a tx the caller signs locally and the node relays, so the node never
holds users' keys. Errors come back as :class:`ApiCallError` (or
:class:`TxRefused` when the contract refused), with the API's code and message.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from ..crypto import Identity
from ..crypto.tls import client_context
from ..ledger import Block, Head, InclusionProof, LedgerBackend, Receipt, SignedTx
from ..ledger.remote import refusal_in, send_signed
from . import sdk

__all__ = ["ApiCallError", "Client"]


class ApiCallError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details


class _NodeLedger(LedgerBackend):
    """Submit-only ledger backend that goes through the node (for the ``sdk`` helpers)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @property
    def chain_id(self) -> str:
        if self.client._chain_id is None:
            self.client._chain_id = str(self.client.status()["chain_id"])
        return self.client._chain_id

    def submit(self, stx: SignedTx) -> Receipt:
        r = self.client.call("POST", "/v1/txs", stx.to_json())
        self.client.last_height = max(self.client.last_height, r["height"])
        return Receipt(r["tx_id"], r["height"], r["index"], r["code"], r["reason"])

    def submit_many(self, stxs: Sequence[SignedTx]) -> list[Receipt | Exception]:
        return [self.submit(s) for s in stxs]

    def blocks_since(self, height: int, limit: int = 100) -> list[Block]:
        raise NotImplementedError("nodes do not serve raw blocks; ask the ordering service")

    def head(self) -> Head:
        s = self.client.status()
        return Head(s["height"], s["head_hash"], 0)

    def proof(self, tx_id: str) -> InclusionProof:
        raise NotImplementedError("ask the ordering service for proofs")


class Client:
    def __init__(
        self, url: str, identity: Identity, *, timeout_s: float = 60.0, ca_bundle: str | Path | None = None
    ) -> None:
        """``ca_bundle``: the consortium's certificate bundle (``certs/bundle.pem``) for https nodes."""
        self.url = url.rstrip("/")
        self.identity = identity
        verify: ssl.SSLContext | bool = client_context(Path(ca_bundle)) if ca_bundle else True
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, verify=verify)
        self.ledger: LedgerBackend = _NodeLedger(self)
        self._chain_id: str | None = None
        self.last_height = -1  # highest block this client committed in; reads wait for it

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        raw = b"" if body is None else json.dumps(body).encode()
        try:
            resp = send_signed(self._http, self.identity, method, path, params, raw)
        except httpx.HTTPError as exc:
            raise ApiCallError(0, "UNREACHABLE", f"node at {self.url} unreachable: {exc}", {}) from None
        data = resp.json() if resp.content else None
        if resp.status_code >= 400:
            refused = refusal_in(data)
            if refused is not None:
                raise refused
            err = (data or {}).get("error", {})
            raise ApiCallError(
                resp.status_code,
                err.get("code", "HTTP"),
                err.get("message", resp.text),
                err.get("details", {}),
            )
        return data

    # -- reads ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return dict(self.call("GET", "/v1/status"))

    def query(self, path: str, *, min_height: int | None = None) -> Any:
        """Read state; waits until the node applied ``min_height`` (default: our last commit)."""
        h = self.last_height if min_height is None else min_height
        return self.call("GET", f"/v1/query/{path}", params={"min_height": h} if h >= 0 else None)

    def catalog(self) -> list[dict[str, Any]]:
        return list(self.query("catalog"))

    def application(self, app_id: str) -> dict[str, Any]:
        return dict(self.query(f"application/{app_id}"))

    def preview(self, dataset: str, rows: int = 5) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/preview/{dataset}", params={"rows": rows}))

    def audit(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/audit"))

    # -- data ------------------------------------------------------------------
    def bind_source(self, dataset: str, source: dict[str, Any]) -> dict[str, Any]:
        """Have the owner's node profile a source (schema, rows, digest) and bind it to ``dataset``."""
        return dict(self.call("POST", "/v1/sources", {"dataset": dataset, "source": source}))

    def register_dataset(
        self, *, unit: str, name: str, title: str, source: dict[str, Any], org: str, **kw: Any
    ) -> Receipt:
        """Profile ``source`` on the node, then sign and submit ``dataset.register``."""
        profile = self.bind_source(f"{org}/{unit}/{name}", source)
        return sdk.register_dataset(
            self.ledger,
            self.identity,
            unit=unit,
            name=name,
            title=title,
            kind=profile["kind"],
            schema=profile["schema"],
            row_count=profile["row_count"],
            content_digest=profile["content_digest"],
            **kw,
        )

    def publish_version(self, *, dataset: str, source: dict[str, Any]) -> Receipt:
        """The data changed: profile the new source on the owner's node, then sign ``dataset.version``."""
        profile = self.bind_source(dataset, source)
        return sdk.publish_version(
            self.ledger,
            self.identity,
            dataset=dataset,
            schema=profile["schema"],
            row_count=profile["row_count"],
            content_digest=profile["content_digest"],
        )

    def check_use(self, *, dataset: str, grant: str, engine: str, columns: Sequence[str]) -> dict[str, Any]:
        body = {
            "dataset": dataset,
            "grant": grant,
            "engine": engine,
            "columns": list(columns),
            "min_height": self.last_height,
        }
        return dict(self.call("POST", "/v1/uses", body))

    def call_service(
        self,
        dataset: str,
        *,
        grant: str,
        params: dict[str, Any] | None = None,
        fields: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Call an API-type dataset through its owner's node (this client must point at that node)."""
        body = {"grant": grant, "params": params or {}, "fields": list(fields) if fields else None}
        return dict(self.call("POST", f"/v1/services/{dataset}", body))

    def close(self) -> None:
        self._http.close()
