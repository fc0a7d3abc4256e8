"""Evaluate repo content in a long-lived child process, never in a worker's own process.

A hostile repo's YAML may be as large as the limits allow (a million nodes); evaluating it
in the worker would grow the process that also runs the engine and the API (`lintas up`)
and hold the GIL they need. A :class:`ChildSession` runs one call at a time in a child:

- its address space is capped (``memory_mb``): a blow-up is a ``MemoryError`` in the child,
  reported as a clear error, and the child is replaced;
- the caller's deadline is enforced: past it the child is killed (and its process group),
  and the next call starts a fresh one;
- a child whose resident memory grew past ``recycle_mb`` after a call is replaced, so one
  hostile job does not leave the next ones a large process;
- the child keeps its own state between calls (caches), built by ``factory`` in the child.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import resource
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from lintas.engine.errors import PermanentError


class IsolatedError(PermanentError):
    """The child could not finish the call: memory, deadline, or it died. Not retryable."""


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _serve(conn: Connection, factory: Callable[[], Callable[..., Any]], memory_mb: int) -> None:
    os.setpgrp()
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    fn = factory()
    while True:
        try:
            args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            out: tuple[str, Any] = ("ok", fn(*args))
        except MemoryError:
            out = ("error", f"out of memory (the evaluation is capped at {memory_mb} MB)")
        except RecursionError:
            out = ("error", "nesting too deep (recursion limit)")
        except Exception as exc:
            out = ("error", f"{type(exc).__name__}: {str(exc)[:1000]}")
        try:
            conn.send((out, _rss_mb()))
        except MemoryError:
            conn.send((("error", f"out of memory (the evaluation is capped at {memory_mb} MB)"), _rss_mb()))


class ChildSession:
    """``ChildSession(factory).call(*args, timeout_s=...)``; thread-safe (one call at a time)."""

    def __init__(
        self,
        factory: Callable[[], Callable[..., Any]],
        *,
        memory_mb: int = 1024,
        recycle_mb: float = 200.0,
        what: str = "evaluation",
    ) -> None:
        self._factory = factory
        self.memory_mb = memory_mb
        self.recycle_mb = recycle_mb
        self.what = what
        self._lock = threading.Lock()
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self.starts = 0

    def _start(self) -> Connection:
        ctx = mp.get_context("forkserver")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_serve, args=(child, self._factory, self.memory_mb), daemon=True, name=f"lintas-{self.what}"
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self.starts += 1
        return parent

    def _stop(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is not None and proc.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.join(5)

    def call(self, *args: Any, timeout_s: float) -> Any:
        with self._lock:
            conn = self._conn or self._start()
            try:
                conn.send(args)
                if not conn.poll(timeout_s):
                    self._stop()
                    raise IsolatedError(f"{self.what} timed out after {timeout_s:g}s (its process was killed)")
                (status, value), rss = conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                code = self._proc.exitcode if self._proc is not None else None
                self._stop()
                raise IsolatedError(
                    f"{self.what} process died (exit code {code}); limit {self.memory_mb} MB of address space"
                ) from None
            if status != "ok" or rss > self.recycle_mb:
                self._stop()  # a fresh child for the next call
            if status != "ok":
                raise IsolatedError(f"{self.what} failed: {value}")
            return value

    def close(self) -> None:
        with self._lock:
            self._stop()
