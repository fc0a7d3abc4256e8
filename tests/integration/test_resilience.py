"""Crashes and outages: nothing is lost, nothing runs twice, nothing hangs forever."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from lintas.engine import registry
from lintas.engine import subjects as S
from lintas.engine.app import build_stages, make_engine, nats_session, stack
from lintas.engine.events import Job
from lintas.engine.journal import Journal
from lintas.engine.natsd import EmbeddedNats
from lintas.engine.runner import AheadOfRunError
from lintas.engine.settings import Settings
from lintas.engine.state import Run, RunState, StageStatus
from lintas.engine.worker import Worker
from tests.integration.helpers import commit, git, make_repo, pipeline, push, run_id_of, wait_run
from tests.integration.procs import Proc


def marks(settings: Settings, run_id: str, stage: str) -> list[str]:
    f = settings.home / "marks" / f"{run_id}.{stage}"
    return f.read_text().splitlines() if f.exists() else []


async def wait_stage(topo, run_id: str, stage: str, status: str, timeout: float = 20.0, worker: bool = False):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        got = await __import__("lintas.engine.store", fromlist=["RunStore"]).RunStore(topo.runs).get(S.run_key(run_id))
        if got is not None and stage in got[0].stages:
            rec = got[0].stages[stage]
            if rec.status.value == status and (not worker or rec.worker):
                return got[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{run_id}/{stage} never reached {status}")


# Every real stage: the `lintas init` commit runs the template's full pipeline first.
REAL_STAGES = [k for k in registry.stage_kinds() if not k.startswith("t-")]

SLOW3 = pipeline(
    "  s1:\n    uses: t-sleep\n    with: {seconds: 1.5}\n"
    "  s2:\n    uses: t-sleep\n    needs: [s1]\n    with: {seconds: 1.5}\n"
    "  s3:\n    uses: t-sleep\n    needs: [s2]\n    with: {seconds: 0.5}\n"
)


async def test_engine_sigkill_mid_stage_then_restart_completes_once(
    tmp_path: Path, settings: Settings, procs: Callable[..., Proc]
) -> None:
    repo = make_repo(tmp_path, settings)
    engine = procs("engine", log="engine1.log")
    async with (
        nats_session(settings, name="test") as (nc, topo),
        Worker(nc, topo, settings, build_stages(settings, [*REAL_STAGES, "t-sleep"]), concurrency=2),
    ):
        await engine.wait_log("engine started")
        sha = commit(repo, settings, SLOW3, "three slow stages")
        push(repo, settings)
        rid = run_id_of(repo, sha)
        await wait_stage(topo, rid, "s1", "running", worker=True)
        engine.kill()  # mid-stage: s1 is executing on the worker
        await asyncio.sleep(2.0)  # s1 finishes while no engine runs; its result waits in RESULTS
        procs("engine", log="engine2.log")
        run = await wait_run(topo, rid, timeout=40)
        assert run.state is RunState.succeeded, run.error
        journal = Journal(topo.journal)
        for stage in ("s1", "s2", "s3"):
            entry = await journal.get(Job.make_id(rid, stage, 1))
            assert entry is not None and entry.state == "done"
            assert entry.executions == 1, (stage, entry)
            assert len(marks(settings, rid, stage)) == 1
            assert run.stages[stage].attempt == 1


async def test_worker_sigkill_mid_job_is_redelivered_to_another(
    tmp_path: Path, settings: Settings, procs: Callable[..., Proc]
) -> None:
    repo = make_repo(tmp_path, settings)
    files = pipeline("  slow:\n    uses: t-sleep\n    with: {seconds: 3}\n")
    w1 = procs("worker", "--stage", "t-sleep", log="w1.log")
    w2 = procs("worker", "--stage", "t-sleep", log="w2.log")
    async with (
        nats_session(settings, name="test") as (nc, topo),
        Worker(nc, topo, settings, build_stages(settings, REAL_STAGES)),
        make_engine(nc, topo, settings),
    ):
        await w1.wait_log("worker started")
        await w2.wait_log("worker started")
        sha = commit(repo, settings, files, "slow")
        push(repo, settings)
        rid = run_id_of(repo, sha)
        running = await wait_stage(topo, rid, "slow", "running", worker=True)
        victim_pid = int((running.stages["slow"].worker or "").rsplit(":", 1)[1])
        for _ in range(100):  # the stage itself has begun executing on the victim
            if marks(settings, rid, "slow"):
                break
            await asyncio.sleep(0.05)
        victim, survivor = (w1, w2) if victim_pid == w1.pid else (w2, w1)
        assert victim.pid == victim_pid
        victim.kill()
        run = await wait_run(topo, rid, timeout=40)
        assert run.state is RunState.succeeded, run.error
        assert run.stages["slow"].worker.endswith(f":{survivor.pid}")  # type: ignore[union-attr]
        assert run.stages["slow"].deliveries == 2
        executions = marks(settings, rid, "slow")
        assert [f"pid={victim.pid}" in e for e in executions] == [True, False]


MARKED3 = pipeline(
    "  s1:\n    uses: t-noop\n    with: {mark: true}\n"
    "  s2:\n    uses: t-noop\n    needs: [s1]\n    with: {mark: true}\n"
    "  s3:\n    uses: t-noop\n    needs: [s2]\n    with: {mark: true}\n"
)


async def test_job_sent_beside_a_save_that_did_not_land(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine sends a stage's job while the run's save is in flight. When the save does not
    land (as if the engine died between them), the job runs anyway and its result arrives
    before the run knows the job: the result is sent back (not dropped) until the input that
    dispatched the job is decided again; then the run goes on, every stage once, attempt 1."""
    repo = make_repo(tmp_path, settings)
    async with (
        nats_session(settings, name="test") as (nc, topo),
        Worker(nc, topo, settings, build_stages(settings, [*REAL_STAGES, "t-noop"])),
    ):
        engine = make_engine(nc, topo, settings)
        real_save, real_result = engine._save, engine._on_result
        lost: list[str] = []
        ahead: list[str] = []

        async def save(run: Run, rev: int | None) -> None:
            s2 = run.stages.get("s2")
            if not lost and s2 is not None and s2.status is StageStatus.running:
                lost.append(run.run_id)
                await asyncio.sleep(0.2)  # the job went out meanwhile
                raise TimeoutError("save not acknowledged (test)")
            await real_save(run, rev)

        async def on_result(msg: Msg) -> None:
            try:
                await real_result(msg)
            except AheadOfRunError:
                ahead.append(msg.subject)
                raise

        monkeypatch.setattr(engine, "_save", save)
        monkeypatch.setattr(engine, "_on_result", on_result)  # before start: the input loop takes it then
        async with engine:
            sha = commit(repo, settings, MARKED3, "three marked stages")
            push(repo, settings)
            rid = run_id_of(repo, sha)
            run = await wait_run(topo, rid, timeout=30)
        assert lost == [rid] and ahead, (lost, ahead)  # the job ran before its dispatch was saved
        assert run.state is RunState.succeeded, run.error
        journal = Journal(topo.journal)
        for stage in ("s1", "s2", "s3"):
            entry = await journal.get(Job.make_id(rid, stage, 1))
            assert entry is not None and entry.state == "done" and entry.executions == 1, (stage, entry)
            assert len(marks(settings, rid, stage)) == 1, stage
            assert run.stages[stage].attempt == 1 and run.stages[stage].deliveries == 1, stage


async def test_always_failing_job_is_dead_lettered(tmp_path: Path, settings: Settings) -> None:
    repo = make_repo(tmp_path, settings)
    files = pipeline("  boom:\n    uses: t-boom\n  after:\n    uses: t-noop\n    needs: [boom]\n")
    async with stack(settings) as st:
        sha = commit(repo, settings, files, "boom")
        push(repo, settings)
        rid = run_id_of(repo, sha)
        run = await wait_run(st.topo, rid, timeout=30)
        assert run.state is RunState.failed
        assert run.stages["boom"].status is StageStatus.failed
        assert f"dead-lettered after {settings.job_max_deliver} deliveries" in (run.error or "")
        assert "boom: this stage always raises" in (run.error or "")
        assert run.stages["after"].status is StageStatus.skipped
        assert len(marks(settings, rid, "boom")) == settings.job_max_deliver
        dlq = await st.topo.js.get_last_msg(S.DLQ_STREAM, S.dlq("t-boom"))
        assert Job.model_validate_json(dlq.data or b"").run_id == rid


async def test_nats_down_during_push_spools_and_runs_later(
    tmp_path: Path, settings: Settings, nats_server: EmbeddedNats
) -> None:
    repo = make_repo(tmp_path, settings)
    initial = git(repo, "rev-parse", "HEAD", settings=settings).stdout.strip()
    await nats_server.stop()
    sha = commit(repo, settings, {"fabric/x.yaml": "x: 1\n"}, "while NATS is down")
    out = push(repo, settings)
    assert out.returncode == 0
    assert "spooled" in out.stderr
    assert len(list(settings.spool_dir.glob("*.json"))) == 2  # init push + this push
    await nats_server.start()
    async with stack(settings) as st:
        first = await wait_run(st.topo, run_id_of(repo, initial))
        run = await wait_run(st.topo, run_id_of(repo, sha))
        # the spooled init push is no longer the branch head when it arrives: refused as stale (issue 13)
        assert first.state is RunState.superseded and run.state is RunState.succeeded
        assert first.superseded_by == run.run_id or "is no longer the head" in (first.error or "")
    assert list(settings.spool_dir.glob("*.json")) == []
