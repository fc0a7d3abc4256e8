"""Running Lintas's asyncio entry points, on uvloop when it is installed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# Threads for blocking calls (``asyncio.to_thread``: git, SSH and NETCONF-style drivers, libvirt,
# OVSDB). Python's default, CPU count + 4, is 6 on a 2-core machine, shared by the engine, every
# worker, the API and the drift scanner of one `lintas up`: a few calls held by unresponsive
# devices would leave nothing for the rest. These calls wait on the network, not the CPU.
IO_THREADS = 32


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # optional: the stock loop works, just slower
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T], *, io_threads: int = IO_THREADS) -> T:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        pool = ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="lintas-io")
        runner.get_loop().set_default_executor(pool)
        return runner.run(coro)
