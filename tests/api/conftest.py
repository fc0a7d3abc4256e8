"""Fixtures for API tests: the real app on a real nats-server, tokens per role, a webhook
repo with its secret in the environment, and a helper to serve the app over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client

from lintas.engine import subjects as S
from lintas.engine.api.app import create_app, server
from lintas.engine.api.settings import TokenEntry, WebhookRepo
from lintas.engine.bus import Topology, connect, ensure_topology
from lintas.engine.natsd import free_port
from lintas.engine.repos import RepoEntry, RepoRegistry
from lintas.engine.settings import Settings
from lintas.engine.state import Run, RunState
from lintas.engine.store import RunStore

HOOK_SECRET = "s3cr3t-hook-value"
TOKENS = {"viewer": "tok-viewer-1234", "operator": "tok-operator-5678", "admin": "tok-admin-9012"}
NAMES = {"viewer": "vera", "operator": "olga", "admin": "adam"}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def api_settings(settings: Settings, **over: object) -> Settings:
    """The test settings plus tokens per role and the webhook repo ``infra``."""
    return settings.model_copy(
        update=dict(
            api_tokens=[
                TokenEntry(name=NAMES[r], role=r, sha256=hashlib.sha256(t.encode()).hexdigest())
                for r, t in TOKENS.items()
            ],
            webhooks={
                "infra": WebhookRepo(
                    github="acme/infra",
                    gitlab="acme/infra",
                    gitea="acme/infra",
                    secret_ref="env:LINTAS_TEST_HOOK_SECRET",
                )
            },
            **over,
        )
    )


def gh_sign(body: bytes, secret: str = HOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Api:
    app: FastAPI
    nc: Client
    topo: Topology
    http: httpx.AsyncClient

    async def event_count(self) -> int:
        info = await self.topo.js.stream_info(S.EVENTS_STREAM)
        return int(info.state.messages)


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[tuple[Client, Topology]]:
    nc = await connect(settings, settings.nats_url or "", name="api-test")
    try:
        yield nc, await ensure_topology(nc.jetstream(), settings)
    finally:
        await nc.close()


@pytest.fixture
def make_api(
    settings: Settings, bus: tuple[Client, Topology], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., AbstractAsyncContextManager[Api]]:
    monkeypatch.setenv("LINTAS_TEST_HOOK_SECRET", HOOK_SECRET)
    RepoRegistry(settings.home).add(RepoEntry(name="infra", url="/srv/git/infra.git"))

    @asynccontextmanager
    async def make(**over: object) -> AsyncIterator[Api]:
        nc, topo = bus
        app = create_app(nc, topo, api_settings(settings, **over))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                yield Api(app, nc, topo, http)

    return make


@pytest.fixture
async def api(make_api: Callable[..., AbstractAsyncContextManager[Api]]) -> AsyncIterator[Api]:
    async with make_api() as a:
        yield a


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The app on a real uvicorn on a free loopback port; yields the base URL."""
    addr = f"127.0.0.1:{free_port()}"
    srv = server(app, addr)
    task = asyncio.create_task(srv.serve())
    try:
        while not srv.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://{addr}"
    finally:
        srv.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


def fake_run(
    i: int,
    *,
    repo: str = "infra",
    state: RunState = RunState.succeeded,
    ref: str = "refs/heads/main",
    base: datetime | None = None,
) -> Run:
    now = (base or datetime(2026, 1, 1, tzinfo=UTC)) + timedelta(seconds=i)
    return Run(
        run_id=f"r-{i:016x}",
        event_id=f"e{i}",
        repo=repo,
        url="/srv/git/infra.git",
        ref=ref,
        sha=f"{i:040x}",
        state=state,
        created_at=now,
        updated_at=now,
    )


async def store_runs(topo: Topology, runs: list[Run]) -> None:
    store = RunStore(topo.runs)
    sem = asyncio.Semaphore(64)

    async def one(r: Run) -> None:
        async with sem:
            await store.create(RunStore.key(r.run_id), r)

    await asyncio.gather(*(one(r) for r in runs))
