"""The ordering service over HTTP: ``confide orderer start``.

Endpoints (JSON; errors are ``{"error": {"code", "message", "details"}}``)::

    POST /v1/txs                    {"body", "sig"} -> receipt, once the tx's block is durable
    GET  /v1/head                   latest height, hash, time
    GET  /v1/blocks?since=H&limit=N blocks with height > H
    GET  /v1/proof/{tx_id}          inclusion proof
    GET  /v1/genesis                the genesis document

Reads require a signed request (``crypto.httpsig``) from an active member key
of the consortium: the chain holds only metadata, but it is the consortium's.
Txs carry their own signatures. A batcher thread seals the open batch every
``batch_ms`` (or when it is full); a submitter waits until its block is on disk.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from ...crypto.httpsig import NonceCache, SignatureRejected, verify_request
from ..errors import TxRefused
from ..tx import SignedTx
from .backend import EmbeddedBackend

__all__ = ["Batcher", "api_error", "create_orderer_app"]

log = logging.getLogger("confide.orderer")


_PUBLIC = frozenset({"/v1/health", "/openapi.json", "/docs"})


def api_error(status: int, code: str, message: str, **details: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details}}, status_code=status)


class Batcher:
    """Serializes access to the orderer and seals batches on a timer."""

    def __init__(self, backend: EmbeddedBackend, batch_ms: int = 20) -> None:
        self.backend = backend
        self.orderer = backend.orderer
        self.batch_s = batch_ms / 1000
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="batcher", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.batch_s):
            with self.cond:
                if self.orderer.pending:
                    try:
                        self.orderer.cut()
                    except Exception:  # a fault in commit is fatal for the batch, not the service
                        log.exception("sealing a block failed; its txs were not committed")
                    self.cond.notify_all()

    def submit(self, stx: SignedTx, timeout_s: float = 30.0) -> dict[str, Any]:
        with self.cond:
            target = self.orderer.replica.height + 1
            tx_id = self.orderer.submit(stx)  # raises TxRefused
            deadline = time.monotonic() + timeout_s
            while self.orderer.replica.height < target:
                if not self.cond.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError("the block holding this tx was not sealed in time")
            row = self.backend.db.find_tx(tx_id)
        if row is None:
            raise TimeoutError("the batch holding this tx failed to commit; resubmit")
        return {"tx_id": tx_id, "height": row["height"], "index": row["idx"], "code": row["code"]}

    def read(self) -> threading.Condition:
        return self.cond

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self.cond:
            self.orderer.cut()


def create_orderer_app(backend: EmbeddedBackend, *, batch_ms: int = 20) -> FastAPI:
    batcher = Batcher(backend, batch_ms)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.stop()

    app = FastAPI(title="Confide ordering service", version="1", lifespan=lifespan)
    nonces = NonceCache(window_s=300)
    replica = backend.orderer.replica
    lookup = functools.partial(replica.contract.member_key, replica.state)
    app.state.batcher = batcher

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Any:
        if request.method == "GET" and request.url.path not in _PUBLIC:
            body = await request.body()
            try:
                with batcher.cond:
                    verify_request(
                        request.headers, "GET", request.url.path, request.url.query, body,
                        lookup_key=lookup, nonces=nonces,
                    )  # fmt: skip
            except SignatureRejected as exc:
                log.warning("rejected request to %s: %s", request.url.path, exc.detail)
                return api_error(401, "UNAUTHENTICATED", "request signature rejected; sign with a member key")
        return await call_next(request)

    @app.post("/v1/txs")
    def submit(tx: dict[str, str]) -> Any:
        try:
            stx = SignedTx.from_json(tx)
        except (KeyError, ValueError, AttributeError):
            return api_error(422, "MALFORMED", "expected {'body': <canonical JSON>, 'sig': <hex>}")
        try:
            return batcher.submit(stx)
        except TxRefused as exc:
            return api_error(409, "TX_REFUSED", f"{exc.name}: {exc.reason}", tx_id=exc.tx_id,
                             tx_code=exc.code, name=exc.name, reason=exc.reason)  # fmt: skip
        except TimeoutError as exc:
            return api_error(503, "NOT_COMMITTED", str(exc))

    @app.get("/v1/health")
    def health() -> Any:
        """Unauthenticated liveness probe."""
        with batcher.cond:
            return {"height": backend.head().height}

    @app.get("/v1/head")
    def head() -> Any:
        with batcher.cond:
            h = backend.head()
        return {"height": h.height, "hash": h.hash, "time": h.time}

    @app.get("/v1/blocks")
    def blocks(since: int = Query(-1, ge=-1), limit: int = Query(100, ge=1, le=1000)) -> Any:
        with batcher.cond:
            return {"blocks": [b.to_json() for b in backend.blocks_since(since, limit)]}

    @app.get("/v1/proof/{tx_id}")
    def proof(tx_id: str) -> Any:
        with batcher.cond:
            try:
                return backend.proof(tx_id).to_json()
            except KeyError:
                return api_error(404, "NOT_FOUND", f"tx {tx_id} is not on this chain")

    @app.get("/v1/genesis")
    def genesis() -> Any:
        return backend.genesis.model_dump(mode="json")

    return app
