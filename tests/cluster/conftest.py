"""A real 3-node NATS JetStream cluster (three nats-server processes with routes, loopback),
shared by the module; every test gets every node back up and an empty JetStream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from lintas.engine.bus import connect
from lintas.engine.cluster import LocalCluster
from lintas.engine.natsd import free_port
from lintas.engine.settings import Settings, StreamLimits
from tests.cluster.kit import ClusterProc


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("cluster"), 3)
    asyncio.run(c.start())
    try:
        yield c
    finally:
        asyncio.run(c.stop())  # never leave nats-server processes behind


async def _wipe(settings: Settings, url: str) -> None:
    """Delete every stream (and so every bucket and object store) left by an earlier test."""
    nc = await connect(settings, url, name="test-wipe")
    try:
        js = nc.jetstream(timeout=10)
        for _ in range(3):
            try:
                names = [s.config.name for s in await js.streams_info()]
                for name in names:
                    if name:
                        await js.delete_stream(name)
                return
            except Exception:
                await asyncio.sleep(1)
    finally:
        await nc.close()


@pytest.fixture
async def healthy(cluster: LocalCluster) -> LocalCluster:
    """Every node running, a meta leader every node follows, no streams."""
    for node in cluster.nodes:
        if not node.running:
            await cluster.restart(node)
    await cluster.wait_meta_leader(30)
    await _wipe(Settings(), cluster.url)
    return cluster


@pytest.fixture
def csettings(tmp_path: Path, healthy: LocalCluster, request: pytest.FixtureRequest) -> Settings:
    """Short timers. A test that kills NATS leaders sets ``ack_wait_s`` on itself: an ack wait
    shorter than a leader election would redeliver jobs that are running fine."""
    return Settings(
        home=tmp_path / "home",
        nats_url=healthy.url,
        streams=StreamLimits(replicas=3),
        job_ack_wait_s=getattr(request.function, "ack_wait_s", 2.0),
        job_max_deliver=3,
        job_nak_delay_s=0.1,
        tick_s=0.2,
        stage_grace_s=2.0,
        engine_rescan_s=1.0,
        engine_ack_wait_s=3.0,
        nats_retry_s=20.0,
        api_addr=f"127.0.0.1:{free_port()}",
    )


@pytest.fixture
def cprocs(csettings: Settings, tmp_path: Path) -> Iterator[Callable[..., ClusterProc]]:
    """`lintas` processes on the cluster; every one is stopped at teardown, pass or fail."""
    started: list[ClusterProc] = []

    def start(*args: str, log: str) -> ClusterProc:
        p = ClusterProc(csettings, *args, log=tmp_path / log).start()
        started.append(p)
        return p

    yield start
    for p in started:
        with contextlib.suppress(Exception):
            p.cont()  # a SIGSTOPped worker cannot be terminated
        p.stop()


@pytest.fixture
async def session(csettings: Settings) -> AsyncIterator[object]:
    from lintas.engine.app import nats_session

    async with nats_session(csettings, name="test") as s:
        yield s
