"""`lintas up --cluster 3`: three local nats-server nodes with routes, R3 topology, the stack
on it; and nothing left running after it stops."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from lintas.engine import subjects as S
from lintas.engine.bus import connect
from lintas.engine.natsd import free_port
from lintas.engine.settings import Settings
from tests.conftest import subprocess_env

pytestmark = pytest.mark.integration


def three_free_ports() -> int:
    """A base port whose next two are free too (the cluster's client ports)."""
    for _ in range(50):
        base = free_port()
        try:
            for p in (base + 1, base + 2):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
    raise AssertionError("no three consecutive free ports")


def nats_servers_under(home: Path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] == "nats-server" and any(str(home) in a for a in p.info["cmdline"] or []):
            out.append(p)
    return out


async def test_lintas_up_cluster_3_runs_the_stack_on_an_r3_cluster(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, nats_port=three_free_ports(), api_addr=f"127.0.0.1:{free_port()}")
    env = subprocess_env(settings)
    env.pop("LINTAS_NATS_URL")
    env["LINTAS_NATS_PORT"] = str(settings.nats_port)
    log = tmp_path / "up.log"
    with open(log, "wb") as fh:  # noqa: ASYNC230 - a log file for the child
        proc = subprocess.Popen(  # noqa: ASYNC220 - fork/exec returns at once
            [sys.executable, "-m", "lintas.engine.cli.main", "up", "--cluster", "3"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = home / "run" / "up.ready"
        for _ in range(600):
            if ready.exists() or proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert ready.exists(), log.read_text()[-3000:]
        urls = (home / "run" / "nats.url").read_text().strip()
        assert urls == ",".join(f"nats://127.0.0.1:{settings.nats_port + i}" for i in range(3))
        assert len(nats_servers_under(home)) == 3
        assert "local cluster of 3, R3" in " ".join(log.read_text().split())
        nc = await connect(settings, urls, name="test")
        try:
            js = nc.jetstream()
            infos = await js.streams_info()
            assert infos and {i.config.num_replicas for i in infos} == {3}, [
                (i.config.name, i.config.num_replicas) for i in infos
            ]
            consumers = await js.consumers_info(S.EVENTS_STREAM)
            assert consumers, "the engine's consumer is there"
        finally:
            await nc.close()
    finally:
        proc.terminate()
        proc.wait(60)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert nats_servers_under(home) == []  # every node stopped with it
    assert not (home / "run" / "nats.url").exists()
