"""Shared fixtures: a real nats-server per test on a free port, isolated LINTAS_HOME,
and the test stage plugin registered through a real entry point (tests/plugins)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "tests" / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))  # importlib.metadata finds lintas_testplugin's dist-info here

from lintas.engine.natsd import EmbeddedNats, free_port  # noqa: E402
from lintas.engine.settings import Settings  # noqa: E402


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats", free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def nats_url(nats_server: EmbeddedNats) -> str:
    return nats_server.url


def subprocess_env(settings: Settings) -> dict[str, str]:
    """Environment for subprocesses (git hooks, `lintas engine`, `lintas worker`)."""
    env = dict(os.environ)
    env.update(
        LINTAS_HOME=str(settings.home),
        LINTAS_NATS_URL=settings.nats_url or "",
        LINTAS_JOB_ACK_WAIT_S=str(settings.job_ack_wait_s),
        LINTAS_JOB_MAX_DELIVER=str(settings.job_max_deliver),
        LINTAS_JOB_NAK_DELAY_S=str(settings.job_nak_delay_s),
        LINTAS_TICK_S=str(settings.tick_s),
        LINTAS_STAGE_GRACE_S=str(settings.stage_grace_s),
        LINTAS_API_ADDR=settings.api_addr,
        PYTHONPATH=os.pathsep.join([str(PLUGINS), str(ROOT), env.get("PYTHONPATH", "")]),
        GIT_AUTHOR_NAME="Test Author",
        GIT_AUTHOR_EMAIL="author@example.invalid",
        GIT_COMMITTER_NAME="Test Author",
        GIT_COMMITTER_EMAIL="author@example.invalid",
    )
    return env


@pytest.fixture
def settings(tmp_path: Path, nats_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        nats_url=nats_url,
        job_ack_wait_s=2.0,
        job_max_deliver=3,
        job_nak_delay_s=0.1,
        tick_s=0.2,
        stage_grace_s=2.0,
        api_addr=f"127.0.0.1:{free_port()}",  # never the default port: a developer's `lintas up` may hold it
    )


# Fixtures that start a real server or the lab: a test using any of them (directly or through
# another fixture) is an integration test, marked as such automatically. `scripts/test.sh --fast`
# runs everything else.
SERVER_FIXTURES = frozenset(
    {
        "nats_server",
        "cluster",
        "healthy",
        "lab",
        "lab_settings",
        "lx",
        "sw",
        "ovs_target",
        "ovs_target_b",
        "procs",
        "up",
        "api",
        "bus",
        "connect",
        "opa_url",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)
