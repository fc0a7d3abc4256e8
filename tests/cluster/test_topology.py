"""Topology on a cluster: every stream, bucket and the object store R3; R1 migrated; an
impossible replica count refused before anything is created."""

from __future__ import annotations

from pathlib import Path

import pytest

from lintas.engine.bus import _all_stream_names, connect, ensure_topology
from lintas.engine.cluster import LocalCluster
from lintas.engine.errors import ConfigError
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.settings import Settings, StreamLimits

pytestmark = pytest.mark.integration


async def replicas(settings: Settings, url: str) -> dict[str, int]:
    nc = await connect(settings, url, name="test")
    try:
        js = nc.jetstream()
        return {s.config.name or "": s.config.num_replicas or 1 for s in await js.streams_info()}
    finally:
        await nc.close()


async def test_every_stream_bucket_and_object_store_is_r3(csettings: Settings, healthy: LocalCluster) -> None:
    nc = await connect(csettings, healthy.url, name="test")
    try:
        await ensure_topology(nc.jetstream(), csettings)
    finally:
        await nc.close()
    got = await replicas(csettings, healthy.url)
    expected = _all_stream_names(csettings)
    assert sorted(got) == sorted(expected)
    assert {name: 3 for name in expected} == got
    assert any(n.startswith("KV_") for n in got) and any(n.startswith("OBJ_") for n in got)


async def test_r1_topology_is_migrated_to_r3_with_its_data(csettings: Settings, healthy: LocalCluster) -> None:
    r1 = csettings.model_copy(update={"streams": StreamLimits(replicas=1)})
    nc = await connect(csettings, healthy.url, name="test")
    try:
        topo = await ensure_topology(nc.jetstream(), r1)
        await topo.runs.put("run.kept", b"{}")
        assert set((await replicas(csettings, healthy.url)).values()) == {1}
        topo = await ensure_topology(nc.jetstream(), csettings)  # R3 now: scaled in place
        assert set((await replicas(csettings, healthy.url)).values()) == {3}
        assert (await topo.runs.get("run.kept")).value == b"{}"
        await ensure_topology(nc.jetstream(), csettings)  # and again: nothing changes
    finally:
        await nc.close()


async def test_more_replicas_than_servers_is_refused_before_anything_is_created(
    csettings: Settings, healthy: LocalCluster
) -> None:
    r5 = csettings.model_copy(update={"streams": StreamLimits(replicas=5), "nats_retry_s": 2.0})
    nc = await connect(csettings, healthy.url, name="test")
    try:
        with pytest.raises(
            ConfigError, match="REPLICAS=5: the NATS cluster cannot place that many.*nothing was created"
        ):
            await ensure_topology(nc.jetstream(), r5)
    finally:
        await nc.close()
    assert await replicas(csettings, healthy.url) == {}


async def test_r3_on_a_standalone_server_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    async with EmbeddedNats(tmp_path / "nats", free_port()) as url:
        settings = Settings(home=tmp_path / "home", nats_url=url, streams=StreamLimits(replicas=3))
        nc = await connect(settings, url, name="test")
        try:
            with pytest.raises(ConfigError, match="needs a NATS cluster.*standalone"):
                await ensure_topology(nc.jetstream(), settings)
        finally:
            await nc.close()
        assert await replicas(settings, url) == {}
