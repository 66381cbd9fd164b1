"""One JSON error shape for the whole API, mapped from domain errors in one place.

``{"error": {"code": "TX_REFUSED", "message": "...", "details": {...}}}``
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ...ledger.errors import LedgerError, TxRefused
from ..enforcement import EnforcementDenied
from ..refusal import Refused

__all__ = ["ApiError", "install_error_handlers"]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def _json(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(TxRefused)
    async def _refused(_: Request, exc: TxRefused) -> JSONResponse:
        details = {"tx_id": exc.tx_id, "tx_code": exc.code, "name": exc.name, "reason": exc.reason}
        return _json(409, "TX_REFUSED", f"{exc.name}: {exc.reason}", details)

    @app.exception_handler(Refused)
    async def _engine(_: Request, exc: Refused) -> JSONResponse:
        return _json(exc.status, exc.code, exc.message)

    @app.exception_handler(EnforcementDenied)
    async def _denied(_: Request, exc: EnforcementDenied) -> JSONResponse:
        return _json(403, "USE_DENIED", exc.reason)

    @app.exception_handler(LookupError)
    async def _missing(_: Request, exc: LookupError) -> JSONResponse:
        return _json(404, "NOT_FOUND", str(exc).strip("'\""))

    @app.exception_handler(LedgerError)
    async def _ledger(_: Request, exc: LedgerError) -> JSONResponse:
        return _json(503, "LEDGER_UNAVAILABLE", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:10]]
        return _json(422, "INVALID_REQUEST", "the request body or parameters are invalid", {"errors": errs})
