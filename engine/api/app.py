"""The status API (FastAPI). App factory with explicit routes; the NATS topology is
injected, never a global. Issue 7 adds actions, webhooks, auth, SSE and the dashboard."""

from __future__ import annotations

from typing import Annotated

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from nats.aio.client import Client

from engine import __version__
from engine import subjects as S
from engine.bus import Topology
from engine.cli import queries
from engine.views import RunDetail, RunSummary


class ApiContext:
    def __init__(self, nc: Client, topo: Topology) -> None:
        self.nc = nc
        self.topo = topo


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.lintas
    return ctx


Ctx = Annotated[ApiContext, Depends(_ctx)]


async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


async def readyz(ctx: Ctx) -> dict[str, object]:
    if not ctx.nc.is_connected:
        raise HTTPException(503, "NATS not connected")
    missing = []
    for stream in (S.EVENTS_STREAM, S.JOBS_STREAM, S.RESULTS_STREAM):
        try:
            await ctx.topo.js.stream_info(stream)
        except Exception:
            missing.append(stream)
    if missing:
        raise HTTPException(503, f"streams missing: {', '.join(missing)}")
    return {"status": "ready"}


async def list_runs(
    ctx: Ctx,
    repo: str | None = None,
    state: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RunSummary]:
    return await queries.list_runs(ctx.topo, repo=repo, state=state, limit=limit)


async def get_run(ctx: Ctx, run_id: str) -> RunDetail:
    detail = await queries.get_run(ctx.topo, run_id)
    if detail is None:
        raise HTTPException(404, f"no run {run_id}")
    return detail


def create_app(nc: Client, topo: Topology) -> FastAPI:
    app = FastAPI(title="Lintas", version=__version__, summary="Pipeline status API")
    app.state.lintas = ApiContext(nc, topo)
    ops = APIRouter(tags=["operations"])
    ops.add_api_route("/healthz", healthz, methods=["GET"])
    ops.add_api_route("/readyz", readyz, methods=["GET"])
    runs = APIRouter(prefix="/api/v1", tags=["runs"])
    runs.add_api_route("/runs", list_runs, methods=["GET"], response_model=list[RunSummary])
    runs.add_api_route("/runs/{run_id}", get_run, methods=["GET"], response_model=RunDetail)
    app.include_router(ops)
    app.include_router(runs)
    return app


def server(app: FastAPI, addr: str) -> uvicorn.Server:
    """A uvicorn server bound to ``host:port``; ``await srv.serve()`` in the caller's loop,
    set ``srv.should_exit`` to stop it."""
    host, _, port = addr.rpartition(":")
    config = uvicorn.Config(app, host=host or "127.0.0.1", port=int(port), log_level="warning", lifespan="off")
    return uvicorn.Server(config)
