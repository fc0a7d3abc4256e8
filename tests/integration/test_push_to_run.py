"""git push -> hook -> JetStream -> engine -> workers -> terminal run, all real."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lintas.engine.app import stack
from lintas.engine.client import publish_push
from lintas.engine.events import PushEvent, run_id_for
from lintas.engine.runner import Engine
from lintas.engine.settings import Settings
from lintas.engine.state import Run, RunState
from lintas.engine.store import RunStore
from tests.integration.helpers import commit, git, make_repo, pipeline, push, run_id_of, wait_run


async def test_push_produces_a_succeeded_run(tmp_path: Path, settings: Settings) -> None:
    repo = make_repo(tmp_path, settings)
    async with stack(settings) as st:
        sha = commit(repo, settings, {"fabric/extra.yaml": "vnis:\n  - 10030\n"}, "add VNI 10030")
        out = push(repo, settings)
        assert "published" in out.stderr, out.stderr
        run = await wait_run(st.topo, run_id_of(repo, sha))
        assert run.state is RunState.succeeded, run.error
        assert run.sha == sha
        assert run.author == "Test Author <author@example.invalid>"
        assert run.message == "add VNI 10030"
        assert run.stages["validate"].status.value == "succeeded"
        assert run.stages["validate"].summary["files_checked"] >= 2
        assert run.changed_paths == ["fabric/extra.yaml"]


async def test_broken_yaml_fails_with_file_and_line(tmp_path: Path, settings: Settings) -> None:
    repo = make_repo(tmp_path, settings)
    async with stack(settings) as st:
        sha = commit(repo, settings, {"fabric/broken.yaml": "vnis:\n  - 10030\n  bad: [\n"}, "broken")
        push(repo, settings)
        run = await wait_run(st.topo, run_id_of(repo, sha))
        assert run.state is RunState.failed
        stage = run.stages["validate"]
        assert stage.status.value == "failed"
        assert any(d.file == "fabric/broken.yaml" and d.line == 3 for d in stage.diagnostics), stage.diagnostics
        assert "fabric/broken.yaml:3" in (stage.error or "")


async def test_bad_pipeline_definition_reaches_the_run(tmp_path: Path, settings: Settings) -> None:
    repo = make_repo(tmp_path, settings)
    async with stack(settings) as st:
        files = pipeline("  validate: {}\n  deploy:\n    needs: [render]\n    timout: 5m\n")
        sha = commit(repo, settings, files, "bad pipeline")
        push(repo, settings)
        run = await wait_run(st.topo, run_id_of(repo, sha))
        assert run.state is RunState.failed
        assert "pipeline definition rejected" in (run.error or "")
        msgs = {(d.file, d.line, d.path): d.message for d in run.diagnostics}
        assert any(f == ".lintas/pipeline.yaml" and ln == 6 and "needs" in p for (f, ln, p) in msgs), msgs
        assert any(ln == 7 and "timout" in m for (_f, ln, _p), m in msgs.items()), msgs


async def test_same_event_five_times_gives_one_run(tmp_path: Path, settings: Settings) -> None:
    repo = make_repo(tmp_path, settings)
    async with stack(settings) as st:
        sha = commit(repo, settings, {"a.yaml": "a: 1\n"}, "one")
        ev = PushEvent(
            event_id=PushEvent.dedup_key(repo.name, "refs/heads/main", sha),
            occurred_at=datetime.now(UTC),
            repo=repo.name,
            url=str(repo.with_name(repo.name + ".git")),
            ref="refs/heads/main",
            sha=sha,
        )
        accepted = [await publish_push(st.topo.js, ev) for _ in range(5)]
        assert accepted == [True, False, False, False, False]  # JetStream dedup
        push(repo, settings)  # the hook publishes the very same identity a sixth time
        run = await wait_run(st.topo, ev.run_id)
        assert run.state is RunState.succeeded
        await asyncio.sleep(0.5)
        keys = await RunStore(st.topo.runs).keys()
        runs = [r async for r, _ in RunStore(st.topo.runs).all() if r.sha == sha]
        assert len(runs) == 1, keys


async def test_three_quick_pushes_supersede_queued_runs(tmp_path: Path, settings: Settings) -> None:
    repo = make_repo(tmp_path, settings)
    files = pipeline("  slow:\n    uses: t-sleep\n    with: {seconds: 1.5}\n")
    initial = git(repo, "rev-parse", "HEAD", settings=settings).stdout.strip()
    async with stack(settings) as st:
        # `lintas init` pushed before NATS was up: that event was spooled and is flushed now.
        assert (await wait_run(st.topo, run_id_of(repo, initial))).state is RunState.succeeded
        shas = []
        for i in range(3):
            shas.append(commit(repo, settings, {**files, "n.yaml": f"n: {i}\n"}, f"push {i}"))
            push(repo, settings)
        first, second, third = [await wait_run(st.topo, run_id_of(repo, s), timeout=30) for s in shas]
        # the first runs if it started before the second push moved the branch; else it is refused
        # as stale, or superseded by a newer push that the engine fetched with it
        assert first.state is RunState.succeeded or (
            first.state is RunState.superseded
            and (
                "is no longer the head of refs/heads/main" in (first.error or "")
                or first.superseded_by in (second.run_id, third.run_id)
            )
        )
        assert second.state is RunState.superseded
        assert second.superseded_by == third.run_id or "is no longer the head" in (second.error or "")
        assert third.state is RunState.succeeded
        assert "slow" not in second.stages or second.stages == {}


async def _the_head_runs(tmp_path: Path, settings: Settings) -> Run:
    """The head's push reaches the stream before its parent's while the branch is busy: the parent's
    push supersedes the head's, is refused as stale, and Lintas runs the head (``reconcile``) once.
    Returns the parent's run."""
    repo = make_repo(tmp_path, settings)
    bare = repo.with_name(repo.name + ".git")
    async with stack(settings) as st:
        # c0 keeps the branch busy while both later pushes arrive (queued behind it)
        c0 = commit(repo, settings, pipeline("  slow:\n    uses: t-sleep\n    with: {seconds: 6}\n"), "c0")
        push(repo, settings)
        r0 = run_id_of(repo, c0)
        await wait_run(st.topo, r0, states={"running"})
        c1 = commit(repo, settings, {"n.yaml": "n: 1\n"}, "c1")
        c2 = commit(repo, settings, {"n.yaml": "n: 2\n"}, "c2")
        git(repo, "push", "-q", "origin", "HEAD:refs/heads/side", settings=settings)  # the objects, not main
        git(bare, "update-ref", "refs/heads/main", c2, settings=settings)  # main moves without its events
        for sha, before in ((c2, c1), (c1, c0)):  # the head's event first
            ev = PushEvent(
                event_id=PushEvent.dedup_key(repo.name, "refs/heads/main", sha),
                occurred_at=datetime.now(UTC),
                repo=repo.name,
                url=str(bare),
                ref="refs/heads/main",
                before=before,
                sha=sha,
            )
            assert await publish_push(st.topo.js, ev)
        assert (await wait_run(st.topo, r0)).state is RunState.succeeded
        assert (await RunStore(st.topo.runs).get(RunStore.key(run_id_of(repo, c1)))) is not None  # came while busy
        r1, r2 = run_id_of(repo, c1), run_id_of(repo, c2)
        parent, head = await wait_run(st.topo, r1), await wait_run(st.topo, r2)
        assert head.state is RunState.superseded and head.superseded_by == r1, (head.state, head.superseded_by)
        assert parent.state is RunState.superseded and "is no longer the head" in (parent.error or "")
        revived = await wait_run(st.topo, run_id_for(f"reconcile:{r1}"), timeout=60)
        assert (revived.sha, revived.source, revived.state) == (c2, "reconcile", RunState.succeeded), revived.error
        return parent


async def test_a_head_superseded_by_its_older_parent_still_runs(tmp_path: Path, settings: Settings) -> None:
    """The head's push reached the stream before its parent's (two hooks at once, a late spool)
    while the branch was busy: by stream order the parent's push superseded the head's, then
    was refused as stale. Lintas runs the head itself (source ``reconcile``), once."""
    await _the_head_runs(tmp_path, settings)


async def test_the_head_still_runs_when_the_engine_fails_right_after_refusing_its_parent(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, but the engine's first attempt to run the head fails (an engine dying there): the head
    is run before the parent's refusal is saved, so the parent is still queued, is started and refused
    again, and the head runs once. (Saving the refusal first lost the head: a refused run is over.)"""
    original, calls = Engine._run_head, []

    async def fails_once(self: Engine, stale: Run, head: str) -> None:
        calls.append(stale.run_id)
        if calls.count(stale.run_id) == 1:  # each refused run's first attempt
            raise RuntimeError("the engine died here")
        await original(self, stale, head)

    monkeypatch.setattr(Engine, "_run_head", fails_once)
    parent = await _the_head_runs(tmp_path, settings)
    assert calls.count(parent.run_id) >= 2
