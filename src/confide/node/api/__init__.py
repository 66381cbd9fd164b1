"""The org node's REST API (FastAPI). OpenAPI at ``/openapi.json``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ...console import mount_console
from ..context import NodeContext
from ..fl import FlSessions
from ..mpc import MpcSessions
from ..psi import PsiSessions
from ..scheduler.service import EngineDriver, NodeScheduler, digest_only
from ..tee.host import EnclaveSessions
from ..tee.verify import TeeRefused
from . import (
    routes_data,
    routes_explorer,
    routes_fl,
    routes_ledger,
    routes_mpc,
    routes_psi,
    routes_scheduler,
    routes_tee,
)
from .errors import install_error_handlers

__all__ = ["create_node_app"]


def create_node_app(ctx: NodeContext) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ctx.follower.start()
        app.state.scheduler.start()
        yield
        app.state.scheduler.stop()
        app.state.tee_sessions.close()
        app.state.psi_sessions.close()
        app.state.mpc_sessions.close()
        app.state.fl_sessions.close()
        ctx.close()

    app = FastAPI(title=f"Confide node ({ctx.config.org})", version="1", lifespan=lifespan)
    app.state.ctx = ctx
    app.state.tee_sessions = EnclaveSessions(ctx)
    app.state.psi_sessions = PsiSessions(ctx)
    app.state.mpc_sessions = MpcSessions(ctx)
    app.state.fl_sessions = FlSessions(ctx)
    app.state.scheduler = NodeScheduler(  # scheduled tasks of this org: the node drives their runs
        ctx,
        {
            "psi": digest_only(app.state.psi_sessions.run),
            "mpc": digest_only(app.state.mpc_sessions.run),
            "tee": _tee_driver(app.state.tee_sessions),
        },
        on_new_blocks=[
            app.state.psi_sessions.reap_cancelled,
            app.state.mpc_sessions.reap_cancelled,
            app.state.tee_sessions.reap_cancelled,
            app.state.fl_sessions.reap_finished,
        ],
    )
    install_error_handlers(app)
    mount_console(app)
    app.include_router(routes_ledger.router)
    app.include_router(routes_data.router)
    app.include_router(routes_tee.router)
    app.include_router(routes_psi.router)
    app.include_router(routes_mpc.router)
    app.include_router(routes_fl.router)
    app.include_router(routes_scheduler.router)
    app.include_router(routes_explorer.router)
    return app


def _tee_driver(sessions: EnclaveSessions) -> EngineDriver:
    """A scheduled tee run hosted by this node: launch and quote the enclave before ``run.start``
    (which names its attestation), then fetch the owners' inputs, run and seal (``execute``)."""

    def prepare(task: dict[str, Any], requester: str) -> tuple[dict[str, Any], tuple[str, str]]:
        session = sessions.open_session(task["id"], requester)
        return {"attestation": session["attestation"]}, (session["session"], requester)

    def run(run_id: str, requester: str, prepared: tuple[str, str] | None) -> dict[str, Any]:
        if prepared is None:
            raise TeeRefused("NO_SESSION", "the run's enclave session is gone (the node restarted)", 409)
        out = sessions.execute(prepared[0], run_id, requester)
        st = out["statement"]
        return {"output_digest": st["output_digest"], "statement": st, "signature": out["signature"]}

    def discard(prepared: tuple[str, str] | None) -> None:
        if prepared is not None:
            with contextlib.suppress(TeeRefused):
                sessions.discard(*prepared)

    return EngineDriver(run=run, prepare=prepare, discard=discard)
