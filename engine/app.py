"""Composition root: wires settings, NATS, the engine, workers and (optionally) the API.

This is the only module that turns stage *names* into stage *objects* (through the
entry-point registry), so ``engine`` never imports ``workers`` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from nats.aio.client import Client

from lintas.engine import registry
from lintas.engine.bus import Topology, connect, ensure_topology
from lintas.engine.client import flush_spool
from lintas.engine.cluster import LocalCluster
from lintas.engine.errors import ConfigError
from lintas.engine.gitrepo import MirrorCache
from lintas.engine.natsd import EmbeddedNats
from lintas.engine.redact import Redactor
from lintas.engine.resolver import PipelineResolver
from lintas.engine.runner import Engine
from lintas.engine.settings import Settings
from lintas.engine.spool import Spool
from lintas.engine.stage import Stage
from lintas.engine.worker import Worker

log = structlog.get_logger("lintas.app")


def nats_url_file(settings: Settings) -> Path:
    return settings.run_dir / "nats.url"


def resolve_nats_url(settings: Settings) -> str | None:
    """LINTAS_NATS_URL, else the embedded server that `lintas up` announced."""
    if settings.nats_url:
        return settings.nats_url
    f = nats_url_file(settings)
    return f.read_text().strip() if f.exists() else None


def redactor_for(settings: Settings) -> Redactor:
    secrets = [
        s.get_secret_value() for s in (settings.nats_password, settings.nats_token, settings.nats_nkey_seed) if s
    ]
    return Redactor(secrets)


def build_stages(settings: Settings, kinds: Sequence[str] | None = None) -> list[Stage]:
    return [registry.load_stage(k)(settings) for k in (kinds or registry.stage_kinds())]


@asynccontextmanager
async def nats_session(settings: Settings, *, name: str) -> AsyncIterator[tuple[Client, Topology]]:
    url = resolve_nats_url(settings)
    if url is None:
        raise ConfigError("no NATS: set LINTAS_NATS_URL or start the embedded one with `lintas up`")
    nc = await connect(settings, url, name=name)
    try:
        topo = await ensure_topology(nc.jetstream(), settings)
        yield nc, topo
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


def make_engine(nc: Client, topo: Topology, settings: Settings) -> Engine:
    resolver = PipelineResolver(
        MirrorCache(settings.cache_dir / "engine"),
        pipeline_file=settings.pipeline_file,
        known_kinds=registry.stage_kinds(),
        default_pipeline=settings.default_pipeline,
        max_timeout_s=settings.max_stage_timeout_s,
    )
    return Engine(nc, topo, settings, resolver, redactor=redactor_for(settings))


async def spool_flusher(settings: Settings, url: str, every_s: float = 2.0) -> None:
    """Send events the git hook spooled while NATS was down (`lintas up`, `lintas spool flush --watch`)."""
    spool = Spool(settings.spool_dir)
    while True:
        if spool.pending():
            try:
                n = await flush_spool(settings, url)
                if n:
                    log.info("flushed spooled events", count=n)
            except Exception as exc:
                log.warning("spool not flushed, will retry", error=f"{type(exc).__name__}: {exc}"[:300])
        await asyncio.sleep(every_s)


@dataclass
class Stack:
    settings: Settings
    nats_url: str
    nc: Client
    topo: Topology
    engine: Engine
    workers: list[Worker] = field(default_factory=list)
    embedded: EmbeddedNats | None = None
    cluster: LocalCluster | None = None


@asynccontextmanager
async def stack(
    settings: Settings,
    *,
    worker_concurrency: int = 4,
    stages: Sequence[Stage] | None = None,
    api: bool = False,
    cluster: int = 0,
) -> AsyncIterator[Stack]:
    """Everything `lintas up` runs: (embedded) NATS, engine, one worker per stage, spool flusher.

    ``cluster=N`` starts N local nats-server processes with routes instead of one (loopback,
    client ports from LINTAS_NATS_PORT up), and every stream, bucket and the object store
    with ``min(N, 3)`` replicas unless LINTAS_STREAMS__REPLICAS says otherwise."""
    for d in (settings.home, settings.run_dir, settings.spool_dir, settings.work_dir, settings.cache_dir):
        d.mkdir(parents=True, exist_ok=True)
    embedded: EmbeddedNats | None = None
    local_cluster: LocalCluster | None = None
    url = settings.nats_url
    if url is None and cluster > 1:
        if settings.streams.replicas == 1:
            settings = settings.model_copy(
                update={"streams": settings.streams.model_copy(update={"replicas": min(cluster, 3)})}
            )
        local_cluster = LocalCluster(
            settings.nats_dir / "cluster",
            cluster,
            sync_interval=settings.nats_sync_interval,
            ports=[settings.nats_port + i for i in range(cluster)],
        )
        url = await local_cluster.start()
        nats_url_file(settings).write_text(url)
    elif url is None:
        embedded = EmbeddedNats(settings.nats_dir, settings.nats_port, sync_interval=settings.nats_sync_interval)
        url = await embedded.start()
        nats_url_file(settings).write_text(url)
    try:
        nc = await connect(settings, url, name="lintas-up")
        topo = await ensure_topology(nc.jetstream(), settings)
        engine = make_engine(nc, topo, settings)
        st = Stack(settings, url, nc, topo, engine, embedded=embedded, cluster=local_cluster)
        flusher: asyncio.Task[None] | None = None
        services: list[asyncio.Task[None]] = []
        try:
            await engine.start()
            redact = redactor_for(settings)
            for s in stages if stages is not None else build_stages(settings):
                w = Worker(nc, topo, settings, [s], concurrency=worker_concurrency, redactor=redact)
                await w.start()
                st.workers.append(w)
            flusher = asyncio.create_task(spool_flusher(settings, url))
            if stages is None:  # the real stack: background services from packages (drift scans, ...)
                services = [
                    asyncio.create_task(svc(settings, topo), name=f"service {name}")
                    for name, svc in registry.load_services().items()
                ]
            async with contextlib.AsyncExitStack() as serving_api:
                if api:
                    from lintas.engine.api.app import serving

                    await serving_api.enter_async_context(serving(nc, topo, settings, redact))
                yield st
        finally:
            for task in [flusher, *services]:
                if task:
                    task.cancel()
            for w in st.workers:
                await w.stop()
            await engine.stop()
            with contextlib.suppress(Exception):
                await nc.close()
    finally:
        if embedded is not None or local_cluster is not None:
            nats_url_file(settings).unlink(missing_ok=True)
        if embedded is not None:
            await embedded.stop()
        if local_cluster is not None:
            await local_cluster.stop()
