"""Time and peak memory of one attack, measured in the process that handled it.

``in_child(fn, *args)`` runs ``fn`` in a fresh child process (fork server, so the
parent's memory does not count) and returns its result with the wall time and the
child's peak RSS (``ru_maxrss``). The child's own baseline (interpreter + imports) is
part of the peak, as it is for a worker.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MB = 1024 * 1024


@dataclass(frozen=True)
class Measured:
    value: Any
    seconds: float
    peak_rss_mb: float


def _run(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    os.setpgrp()  # its own process group: a timeout kills whatever it started too
    t0 = time.perf_counter()
    try:
        value: Any = fn(*args)
        ok = True
    except BaseException as exc:  # reported to the parent, never raised in the child
        value, ok = f"{type(exc).__name__}: {exc}"[:2000], False
    seconds = time.perf_counter() - t0
    conn.send((ok, value, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    conn.close()


def in_child(fn: Callable[..., Any], *args: Any, timeout_s: float = 60.0) -> Measured:
    ctx = mp.get_context("forkserver")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_run, args=(child, fn, args))
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            raise AssertionError(f"{getattr(fn, '__name__', fn)} did not finish in {timeout_s}s")
        ok, value, seconds, peak = parent.recv()
    finally:
        proc.join(5)
        if proc.is_alive() or proc.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid or 0, signal.SIGKILL)  # the child and anything it left running
            proc.join()
    if not ok:
        raise AssertionError(f"the child raised {value}")
    return Measured(value, seconds, peak)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
