"""The status API (FastAPI). App factory with explicit routers and a lifespan; the NATS
topology and the settings are injected, never globals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client

from lintas.engine import __version__
from lintas.engine.api import actions, graph, ops, runs, ui, webhooks
from lintas.engine.api.context import ApiContext
from lintas.engine.bus import Topology
from lintas.engine.errors import ConfigError
from lintas.engine.natsd import ensure_port_free
from lintas.engine.redact import Redactor
from lintas.engine.settings import Settings

__all__ = ["ApiContext", "create_app", "server", "serving"]


def create_app(
    nc: Client,
    topo: Topology,
    settings: Settings | None = None,
    redactor: Redactor | None = None,
) -> FastAPI:
    """``settings`` (default: the environment) gives LINTAS_HOME, tokens and webhooks."""
    ctx = ApiContext(nc, topo, settings if settings is not None else Settings(), redactor)

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
    app.include_router(graph.router())
    app.include_router(actions.router())
    app.include_router(webhooks.router())
    app.include_router(ui.router())
    return app


def server(app: FastAPI, addr: str) -> uvicorn.Server:
    """A uvicorn server bound to ``host:port``; ``await srv.serve()`` in the caller's loop,
    set ``srv.should_exit`` to stop it. The lifespan runs (it starts the run index)."""
    host, _, port = addr.rpartition(":")
    config = uvicorn.Config(app, host=host or "127.0.0.1", port=int(port), log_level="warning", lifespan="on")
    return uvicorn.Server(config)


@asynccontextmanager
async def serving(
    nc: Client, topo: Topology, settings: Settings, redactor: Redactor | None = None
) -> AsyncIterator[uvicorn.Server]:
    """The API and dashboard on ``settings.api_addr``, listening when this is entered and
    stopped when it is left (used by `lintas up` and `lintas api`)."""
    host, _, port = settings.api_addr.rpartition(":")
    ensure_port_free(host or "127.0.0.1", int(port), "status API", "set LINTAS_API_ADDR")
    srv = server(create_app(nc, topo, settings, redactor=redactor), settings.api_addr)
    task = asyncio.create_task(srv.serve(), name="lintas-api")
    try:
        while not srv.started:
            if task.done():
                exc = task.exception() if not task.cancelled() else None
                raise ConfigError(f"status API could not start on {settings.api_addr}: {exc!r}")
            await asyncio.sleep(0.01)
        yield srv
    finally:
        srv.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
