"""Deploy waits briefly for a device leased by a drift scan, and gives up on a real holder."""

from __future__ import annotations

import asyncio

import pytest

from lintas.engine.app import nats_session
from lintas.engine.errors import LockHeldError
from lintas.engine.locks import LeaseLocks
from lintas.engine.settings import Settings
from lintas.workers.deploy.drift import DRIFT_OWNER
from lintas.workers.deploy.rollout import acquire_waiting


async def test_deploy_waits_for_a_short_lease_then_takes_it(settings: Settings) -> None:
    async with nats_session(settings, name="t") as (_nc, topo):
        locks = LeaseLocks(topo.locks, ttl_s=60)
        scan = await locks.acquire("leaf-01", DRIFT_OWNER)

        async def scan_ends() -> None:
            await asyncio.sleep(1.5)
            await locks.release(scan)

        ender = asyncio.create_task(scan_ends())
        lease = await acquire_waiting(locks, "leaf-01", "run:r-1", wait_s=10)
        await ender
        assert lease.owner == "run:r-1" and lease.revision > scan.revision


async def test_deploy_gives_up_on_a_device_held_by_another_run(settings: Settings) -> None:
    async with nats_session(settings, name="t") as (_nc, topo):
        locks = LeaseLocks(topo.locks, ttl_s=60)
        await locks.acquire("leaf-01", "run:r-other")
        with pytest.raises(LockHeldError, match="run:r-other"):
            await acquire_waiting(locks, "leaf-01", "run:r-1", wait_s=1.2)
