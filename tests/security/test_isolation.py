"""The child that evaluates repo content (workers/isolation.py): a blow-up or a hang is a clear
error in the caller, the child is replaced, and the caller's process never grows."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from lintas.workers.isolation import ChildSession, IsolatedError
from tests.security.measure import peak_rss_mb


class Toy:
    """Runs in the child: ``("echo", x)``, ``("alloc", mb)``, ``("sleep", s)``, ``("count",)``."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, op: str, arg: Any = None) -> Any:
        self.calls += 1
        if op == "alloc":
            return len(bytearray(int(arg) * 1024 * 1024))
        if op == "sleep":
            time.sleep(arg)
        if op == "count":
            return self.calls
        return arg


def toy() -> Callable[..., Any]:
    return Toy()


def test_state_is_kept_between_calls_and_a_blow_up_is_an_error_then_a_fresh_child() -> None:
    session = ChildSession(toy, memory_mb=512, recycle_mb=10_000, what="toy")
    try:
        before = peak_rss_mb()
        assert session.call("echo", 7, timeout_s=30) == 7
        assert session.call("count", timeout_s=30) == 2  # the same child: its state is kept
        with pytest.raises(IsolatedError, match=r"toy failed: out of memory \(the evaluation is capped at 512 MB\)"):
            session.call("alloc", 2048, timeout_s=30)
        assert session.call("count", timeout_s=30) == 1 and session.starts == 2  # replaced
        assert peak_rss_mb() - before < 50  # the caller never held the 2 GB
    finally:
        session.close()


def test_a_hang_is_killed_at_the_deadline() -> None:
    session = ChildSession(toy, memory_mb=512, what="toy")
    try:
        t0 = time.perf_counter()
        with pytest.raises(IsolatedError, match=r"toy timed out after 1s \(its process was killed\)"):
            session.call("sleep", 60, timeout_s=1)
        assert time.perf_counter() - t0 < 5
        assert session.call("echo", "ok", timeout_s=30) == "ok"
    finally:
        session.close()


def test_a_child_grown_past_the_recycle_mark_is_replaced() -> None:
    session = ChildSession(toy, memory_mb=1024, recycle_mb=1, what="toy")  # every child is "too big"
    try:
        session.call("echo", 1, timeout_s=30)
        session.call("echo", 2, timeout_s=30)
        assert session.starts == 2
    finally:
        session.close()
