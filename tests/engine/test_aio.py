"""engine.aio.run: the entry points' loop has room for many blocking calls at once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
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


def test_a_crash_of_an_entry_point_prints_every_threads_stack() -> None:
    """A SIGSEGV in a C library (libvirt's client did this to `lintas up` in CI) leaves the
    Python stacks of all threads in the log, not a process that vanished without a line."""
    code = (
        "import asyncio, os, signal, threading\n"
        "from lintas.engine.cli.main import _run\n"
        "def parked(): threading.Event().wait(30)\n"
        "threading.Thread(target=parked, name='parked', daemon=True).start()\n"
        "async def boom(): os.kill(os.getpid(), signal.SIGSEGV)\n"
        "_run(boom())\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in p.stderr
    assert "in parked" in p.stderr and "in boom" in p.stderr  # both threads' stacks
