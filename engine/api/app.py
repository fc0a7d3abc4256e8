"""The status API (FastAPI). App factory with explicit routers and a lifespan; the NATS
topology and the settings are injected, never globals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client

from engine import __version__
from engine.api import actions, ops, runs, webhooks
from engine.api.context import ApiContext
from engine.api.settings import ApiSettings
from engine.bus import Topology
from engine.redact import Redactor
from engine.settings import Settings

__all__ = ["ApiContext", "create_app", "server"]


def create_app(
    nc: Client, topo: Topology, settings: Settings | None = None, api: ApiSettings | None = None,
    redactor: Redactor | None = None,
) -> FastAPI:
    """``settings`` gives LINTAS_HOME (the repo registry); ``api`` the API's own settings.
    Both default to the environment."""
    if api is None:
        api = ApiSettings() if settings is None else ApiSettings(home=settings.home)
    ctx = ApiContext(nc, topo, api, redactor)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await ctx.start()
        try:
            yield
        finally:
            await ctx.stop()

    app = FastAPI(title="Lintas", version=__version__, summary="Pipeline status API", lifespan=lifespan)
    app.state.lintas = ctx
    app.include_router(ops.router())
    app.include_router(runs.router())
    app.include_router(actions.router())
    app.include_router(webhooks.router())
    return app


def server(app: FastAPI, addr: str) -> uvicorn.Server:
    """A uvicorn server bound to ``host:port``; ``await srv.serve()`` in the caller's loop,
    set ``srv.should_exit`` to stop it. The lifespan runs (it starts the run index)."""
    host, _, port = addr.rpartition(":")
    config = uvicorn.Config(app, host=host or "127.0.0.1", port=int(port), log_level="warning", lifespan="on")
    return uvicorn.Server(config)
