"""The web console every org node serves at ``/console/`` (issue 7).

Static files only: plain ES modules, no build step, no logic of their own. The browser signs every
API call (RFC 9421 profile, ``static/api.js``) and every ledger transaction with the user's own key,
which never leaves the browser (``static/keys.js``: imported from the user's PEM file as a
non-extractable WebCrypto key). So the console has exactly the API's authorization: what a user may
not do through the API, the console cannot do either; it only shows the API's refusal.

The one vendored file, ``static/vendor/arrow.js`` (apache-arrow, pinned in
``console/package-lock.json``), decodes released tables; ``make console`` fetches it with npm.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

__all__ = ["STATIC", "mount_console"]

STATIC = Path(__file__).parent / "static"
# The console loads only its own files and talks only to its own node.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class _ConsoleHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/console"):
            response.headers["Content-Security-Policy"] = CSP
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "no-referrer"
            response.headers["Cache-Control"] = "no-cache"
        return response


def mount_console(app: FastAPI) -> None:
    """Serve the console at ``/console/`` and send ``/`` there."""

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    app.add_middleware(_ConsoleHeaders)
    app.mount("/console", StaticFiles(directory=STATIC, html=True), name="console")
