"""A ledger backend reached over HTTP: the embedded chain's ordering service.

The node trusts its *own* copy of the genesis file, never one served by the
orderer, and verifies every block it fetches (the replica does). Reads are
signed with the caller's key (``crypto.httpsig``).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from typing import Any

import httpx

from ..crypto import Identity
from ..crypto.httpsig import sign_request
from .backend import Head, InclusionProof, LedgerBackend, Receipt, register_backend
from .block import Block
from .errors import LedgerError, TxRefused
from .genesis import Genesis
from .tx import SignedTx

__all__ = ["LedgerUnavailable", "RemoteLedger"]


class LedgerUnavailable(LedgerError):
    """The ordering service could not be reached or answered with an error."""


class RemoteLedger(LedgerBackend):
    def __init__(
        self,
        *,
        url: str,
        identity: Identity,
        genesis: Genesis,
        timeout_s: float = 30.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.identity = identity
        self.genesis = genesis
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, verify=verify)

    def _call(self, method: str, path: str, params: dict[str, Any] | None = None, body: bytes = b"") -> Any:
        query = str(httpx.QueryParams(params or {}))
        headers = sign_request(self.identity, method, path, query, body)
        if body:
            headers["Content-Type"] = "application/json"
        try:
            resp = self._http.request(
                method, path + (f"?{query}" if query else ""), content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise LedgerUnavailable(
                f"ordering service at {self.url} unreachable ({exc}); is 'confide orderer start' running?"
            ) from None
        data = resp.json() if resp.content else {}
        if resp.status_code == 409 and data.get("error", {}).get("code") == "TX_REFUSED":
            d = data["error"]["details"]
            raise TxRefused(d["tx_id"], d["tx_code"], d["name"], d["reason"])
        if resp.status_code >= 400:
            err = data.get("error", {})
            raise LedgerUnavailable(
                f"ordering service said {resp.status_code}: {err.get('message', resp.text)}"
            )
        return data

    def submit(self, stx: SignedTx) -> Receipt:
        r = self._call("POST", "/v1/txs", body=json.dumps(stx.to_json()).encode())
        return Receipt(r["tx_id"], r["height"], r["index"], r["code"], "")

    def submit_many(self, stxs: Sequence[SignedTx]) -> list[Receipt | Exception]:
        out: list[Receipt | Exception] = []
        for stx in stxs:
            try:
                out.append(self.submit(stx))
            except TxRefused as exc:
                out.append(exc)
        return out

    def blocks_since(self, height: int, limit: int = 100) -> list[Block]:
        data = self._call("GET", "/v1/blocks", {"since": height, "limit": limit})
        return [Block.from_json(b) for b in data["blocks"]]

    def head(self) -> Head:
        d = self._call("GET", "/v1/head")
        return Head(d["height"], d["hash"], d["time"])

    def proof(self, tx_id: str) -> InclusionProof:
        try:
            return InclusionProof(**self._call("GET", f"/v1/proof/{tx_id}"))
        except LedgerUnavailable as exc:
            raise KeyError(str(exc)) from None

    def close(self) -> None:
        self._http.close()


register_backend("remote", RemoteLedger)
