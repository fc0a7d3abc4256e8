"""Fixtures for end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lintas.engine.settings import Settings
from tests.integration.procs import Proc


@pytest.fixture
def procs(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start `lintas` processes; every one is stopped at teardown, pass or fail."""
    started: list[Proc] = []

    def start(*args: str, log: str) -> Proc:
        p = Proc(settings, *args, log=tmp_path / log).start()
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
