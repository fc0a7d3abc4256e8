"""Target leases on real JetStream KV: exclusivity, expiry takeover, fencing."""

from __future__ import annotations

import pytest

from lintas.engine.app import nats_session
from lintas.engine.errors import LockHeldError
from lintas.engine.locks import LeaseLocks, LockLostError
from lintas.engine.settings import Settings


class FakeClock:
    """Only the lease clock is simulated; KV is real."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


async def test_lease_is_exclusive_expires_and_fences(settings: Settings) -> None:
    clock = FakeClock()
    async with nats_session(settings, name="t") as (_nc, topo):
        locks = LeaseLocks(topo.locks, ttl_s=10, clock=clock)
        a = await locks.acquire("leaf1", "run-a")
        with pytest.raises(LockHeldError, match="locked by run-a"):
            await locks.acquire("leaf1", "run-b")
        other = await locks.acquire("leaf2", "run-b")  # other targets are independent
        assert other.target == "leaf2"
        a = await locks.renew(a)
        clock.t += 11  # run-a stalls past its lease
        b = await locks.acquire("leaf1", "run-b")
        assert b.revision > a.revision  # fencing token moved on
        with pytest.raises(LockLostError):
            await locks.assert_held(a)
        with pytest.raises(LockLostError):
            await locks.renew(a)
        await locks.assert_held(b)
        await locks.release(a)  # a stale release must not free b's lease
        with pytest.raises(LockHeldError):
            await locks.acquire("leaf1", "run-c")
        await locks.release(b)
        async with locks.hold("leaf1", "run-c") as c:
            await locks.assert_held(c)
