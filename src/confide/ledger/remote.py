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
from urllib.parse import parse_qsl

import httpx

from ..crypto import Identity
from ..crypto.httpsig import sign_request
from .backend import Head, InclusionProof, LedgerBackend, Receipt, register_backend
from .block import Block
from .errors import LedgerError, TxRefused
from .genesis import Genesis
from .tx import SignedTx

__all__ = ["LedgerUnavailable", "RemoteLedger", "refusal_in", "send_signed"]


class LedgerUnavailable(LedgerError):
    """The ordering service could not be reached or answered with an error."""


def send_signed(
    http: httpx.Client,
    identity: Identity,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    body: bytes = b"",
) -> httpx.Response:
    """One request signed with ``identity`` (RFC 9421 profile). Raises ``httpx.HTTPError``.

    A query string inside ``path`` is split off, because the signature covers
    path and query separately.
    """
    path, _, inline = path.partition("?")
    query = str(httpx.QueryParams({**dict(parse_qsl(inline)), **(params or {})}))
    headers = sign_request(identity, method, path, query, body)
    if body:
        headers["Content-Type"] = "application/json"
    return http.request(method, path + (f"?{query}" if query else ""), content=body, headers=headers)


def refusal_in(data: Any) -> TxRefused | None:
    """The contract's refusal carried in an API error body (code ``TX_REFUSED``), if any."""
    err = data.get("error", {}) if isinstance(data, dict) else {}
    if err.get("code") != "TX_REFUSED":
        return None
    d = err["details"]
    return TxRefused(d["tx_id"], d["tx_code"], d["name"], d["reason"])


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
        try:
            resp = send_signed(self._http, self.identity, method, path, params, body)
        except httpx.HTTPError as exc:
            raise LedgerUnavailable(
                f"ordering service at {self.url} unreachable ({exc}); is 'confide orderer start' running?"
            ) from None
        data = resp.json() if resp.content else {}
        refused = refusal_in(data) if resp.status_code == 409 else None
        if refused is not None:
            raise refused
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
