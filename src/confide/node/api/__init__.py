"""The org node's REST API (FastAPI). OpenAPI at ``/openapi.json``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ..context import NodeContext
from ..mpc import MpcSessions
from ..psi import PsiSessions
from ..scheduler.service import NodeScheduler
from ..tee.host import EnclaveSessions
from . import routes_data, routes_ledger, routes_mpc, routes_psi, routes_scheduler, routes_tee
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
        ctx.close()

    app = FastAPI(title=f"Confide node ({ctx.config.org})", version="1", lifespan=lifespan)
    app.state.ctx = ctx
    app.state.tee_sessions = EnclaveSessions(ctx)
    app.state.psi_sessions = PsiSessions(ctx)
    app.state.mpc_sessions = MpcSessions(ctx)
    app.state.scheduler = NodeScheduler(  # scheduled tasks of this org: the node drives their runs
        ctx,
        {
            "psi": lambda run, requester: str(app.state.psi_sessions.run(run, requester)["output_digest"]),
            "mpc": lambda run, requester: str(app.state.mpc_sessions.run(run, requester)["output_digest"]),
        },
        on_new_blocks=[app.state.psi_sessions.reap_cancelled, app.state.mpc_sessions.reap_cancelled],
    )
    install_error_handlers(app)
    app.include_router(routes_ledger.router)
    app.include_router(routes_data.router)
    app.include_router(routes_tee.router)
    app.include_router(routes_psi.router)
    app.include_router(routes_mpc.router)
    app.include_router(routes_scheduler.router)
    return app
