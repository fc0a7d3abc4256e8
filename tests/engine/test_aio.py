"""engine.aio.run: the entry points' loop has room for many blocking calls at once."""

from __future__ import annotations

import asyncio
import threading

from lintas.engine import aio


def test_many_blocking_calls_run_at_once_not_cpu_count_plus_four() -> None:
    """20 calls that each wait for all 20: done only if 20 threads run them together (Python's
    default executor has CPU count + 4, 6 on this machine, and would leave them waiting)."""
    n = 20
    barrier = threading.Barrier(n, timeout=10)

    async def main() -> list[int]:
        return await asyncio.gather(*(asyncio.to_thread(barrier.wait) for _ in range(n)))

    assert sorted(aio.run(main())) == list(range(n))
