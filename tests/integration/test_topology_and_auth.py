"""Topology created/updated idempotently; NATS auth options; stages with no worker fail."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from nats.aio.client import Client
from pydantic import SecretStr

from lintas.engine import subjects as S
from lintas.engine.app import stack
from lintas.engine.bus import connect, ensure_topology
from lintas.engine.errors import BusError
from lintas.engine.natsd import find_nats_server, free_port
from lintas.engine.settings import Settings, StreamLimits
from lintas.engine.state import RunState
from tests.integration.helpers import commit, git, make_repo, pipeline, push, run_id_of, wait_run


async def test_topology_is_idempotent_and_updated_in_place(settings: Settings) -> None:
    assert settings.nats_url
    nc = await connect(settings, settings.nats_url, name="t")
    try:
        js = nc.jetstream()
        await ensure_topology(js, settings)
        await js.publish(S.push_event("r"), b"{}")
        await ensure_topology(js, settings)  # again: nothing lost, nothing duplicated
        info = await js.stream_info(S.EVENTS_STREAM)
        assert info.state.messages == 1
        assert info.config.duplicate_window == settings.streams.events_duplicate_window_s
        changed = settings.model_copy(update={"streams": StreamLimits(events_duplicate_window_s=600.0)})
        await ensure_topology(js, changed)  # different settings: the stream is updated, data kept
        info = await js.stream_info(S.EVENTS_STREAM)
        assert info.config.duplicate_window == 600.0 and info.state.messages == 1
        jobs = await js.stream_info(S.JOBS_STREAM)
        assert str(jobs.config.retention) in ("workqueue", "RetentionPolicy.WORK_QUEUE") and str(
            jobs.config.discard
        ) in ("new", "DiscardPolicy.NEW")
    finally:
        await nc.close()


async def _connect_when_up(settings: Settings, url: str) -> Client:
    for _ in range(50):
        try:
            return await connect(settings, url, name="t")
        except BusError:
            await asyncio.sleep(0.1)
    raise AssertionError("nats-server with --auth did not come up")


async def test_token_auth_is_used_and_never_logged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    token = "s3cr3t-nats-token-value"
    cmd = [find_nats_server(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js"), "--auth", token]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
    url = f"nats://127.0.0.1:{port}"
    good = Settings(home=tmp_path / "h", nats_url=url, nats_token=SecretStr(token))
    bad = Settings(home=tmp_path / "h", nats_url=url, nats_connect_timeout_s=0.5)
    try:
        nc = await _connect_when_up(good, url)
        connected = nc.is_connected
        await nc.close()
        with pytest.raises(BusError) as exc:
            await connect(bad, url, name="t", reconnect=False)
        message = str(exc.value)
    finally:
        proc.terminate()
        proc.wait(10)
    out = capsys.readouterr()
    assert connected
    assert "Authorization" in message or "authorization" in message.lower()
    assert token not in message
    assert token not in repr(good)
    assert token not in good.model_dump_json()
    assert token not in out.out + out.err


async def test_a_stage_no_worker_serves_fails_by_its_deadline(tmp_path: Path, settings: Settings) -> None:
    repo = make_repo(tmp_path, settings)
    initial = git(repo, "rev-parse", "HEAD", settings=settings).stdout.strip()
    from lintas.engine import registry
    from lintas.engine.app import build_stages

    real = build_stages(settings, [k for k in registry.stage_kinds() if not k.startswith("t-")])
    async with stack(settings, stages=real) as st:  # nobody serves t-noop
        await wait_run(st.topo, run_id_of(repo, initial), timeout=60)
        sha = commit(repo, settings, pipeline("  orphan:\n    uses: t-noop\n    timeout: 1s\n"), "orphan")
        push(repo, settings)
        run = await wait_run(st.topo, run_id_of(repo, sha), timeout=60)
    assert run.state is RunState.failed
    assert "no result from any worker by the deadline" in (run.error or "")
