"""Unit tests for the pure orchestrator :func:`engine.decide.decide`.

No NATS, no I/O, no clock: every test uses a fixed ``NOW`` and timedelta arithmetic.
Every call goes through :func:`step`, which also checks that ``decide`` never mutates
the run it was given.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lintas.engine.commands import (
    Admitted,
    DispatchJob,
    EmitLog,
    Enqueue,
    Input,
    PipelineRejected,
    PipelineResolved,
    PushReceived,
    Recover,
    ReleaseBranch,
    ResolvePipeline,
    RunRefused,
    StartRun,
    Superseded,
    SupersedeRun,
    Tick,
)
from lintas.engine.decide import Decision, decide
from lintas.engine.diagnostics import Diagnostic
from lintas.engine.events import (
    ControlEvent,
    Job,
    JobDeadLettered,
    JobFinished,
    JobStarted,
    PushEvent,
    StageFailure,
    run_id_for,
)
from lintas.engine.pipeline import PipelineSpec, load_pipeline, topo_order
from lintas.engine.state import Limits, Run, RunState, StageStatus

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SHA = "a" * 40
BEFORE = "b" * 40
REPO = "infra"
URL = "file:///srv/git/infra.git"
REF = "refs/heads/main"
EVENT_ID = f"{REPO}@{REF}@{SHA}"
RID = run_id_for(EVENT_ID)
LIMITS = Limits(max_deliver=3, ack_wait_s=10.0, grace_s=5.0)
TERMINAL = [RunState.succeeded, RunState.failed, RunState.rolled_back, RunState.canceled, RunState.superseded]


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def spec(text: str) -> PipelineSpec:
    return load_pipeline(textwrap.dedent(text), file=".lintas/pipeline.yaml")


# --------------------------------------------------------------------------- pipelines
LINEAR = """\
    version: 1
    name: linear
    stages:
      validate: {timeout: 60}
      render: {needs: [validate], timeout: 120, with: {format: eos}}
      deploy: {needs: [render], uses: deployer, timeout: 5m, with: {strategy: waves}}
    """

DIAMOND = """\
    version: 1
    name: diamond
    stages:
      validate: {timeout: 60}
      policy: {needs: [validate], timeout: 60}
      secscan: {needs: [validate], timeout: 60}
      render: {needs: [policy, secscan], timeout: 60}
    """

RETRY = """\
    version: 1
    name: retry
    stages:
      validate: {timeout: 60, retries: 2, backoff: 10s}
      render: {needs: [validate], timeout: 60}
    """

APPROVAL = """\
    version: 1
    name: approval
    stages:
      validate: {timeout: 60}
      docs: {needs: [validate], timeout: 60}
      deploy: {needs: [validate], approval: required, timeout: 60}
    """

ON_REQUEST = """\
    version: 1
    name: on-request
    stages:
      validate: {timeout: 60}
      render: {needs: [validate], timeout: 60}
      deploy: {needs: [render], approval: on_request, timeout: 60}
    """

HANDLERS = """\
    version: 1
    name: handlers
    stages:
      validate: {timeout: 60}
      deploy: {needs: [validate], timeout: 60}
      verify: {needs: [deploy], timeout: 60}
      rollback: {on_failure: [deploy, verify], timeout: 60}
      cleanup: {on_failure: [validate], timeout: 60}
    """


# --------------------------------------------------------------------------- drivers
def push(event_id: str = EVENT_ID, **kw: Any) -> PushEvent:
    fields: dict[str, Any] = dict(
        event_id=event_id,
        occurred_at=NOW,
        repo=REPO,
        url=URL,
        ref=REF,
        sha=SHA,
        before=BEFORE,
        author="alice",
        message="change leaf1",
        source="hook",
    )
    fields.update(kw)
    return PushEvent(**fields)


def step(run: Run | None, inp: Input, now: datetime = NOW, limits: Limits | None = None) -> Decision:
    """decide(), checking that the input run is left untouched."""
    before = run.model_dump() if run is not None else None
    d = decide(run, inp, now, limits)
    if run is not None:
        assert run.model_dump() == before, "decide mutated its input run"
        assert d.run is not run
    return d


def created(limits: Limits = LIMITS, **kw: Any) -> Run:
    d = step(None, push(**kw), NOW, limits)
    assert d.run is not None
    return d.run


def started(limits: Limits = LIMITS, **kw: Any) -> Run:
    d = step(created(limits, **kw), Admitted())
    assert d.run is not None and d.run.state is RunState.running
    return d.run


def resolved(
    text: str, *, changed_paths: list[str] | None = None, now: datetime = NOW, limits: Limits = LIMITS, **kw: Any
) -> tuple[Run, Decision]:
    d = step(started(limits, **kw), PipelineResolved(spec=spec(text), source="repo", changed_paths=changed_paths), now)
    assert d.run is not None
    return d.run, d


def ctl(action: str, actor: str = "bob", comment: str = "", run_id: str = RID) -> ControlEvent:
    return ControlEvent(
        event_id=f"ctl-{action}-{actor}",
        occurred_at=NOW,
        run_id=run_id,
        action=action,  # type: ignore[arg-type]
        actor=actor,
        comment=comment,
    )


def jid(stage: str, attempt: int = 1, run_id: str = RID) -> str:
    return Job.make_id(run_id, stage, attempt)


def job_started(
    stage: str,
    attempt: int = 1,
    *,
    worker: str = "w1",
    delivery: int = 1,
    job_id: str | None = None,
    began: datetime = NOW,
) -> JobStarted:
    return JobStarted(
        event_id=f"{jid(stage, attempt)}:started:{delivery}",
        occurred_at=began,
        job_id=job_id or jid(stage, attempt),
        run_id=RID,
        stage=stage,
        attempt=attempt,
        worker=worker,
        delivery=delivery,
    )


def ok(
    stage: str,
    attempt: int = 1,
    *,
    summary: dict[str, Any] | None = None,
    worker: str = "w1",
    approval_reasons: list[str] | None = None,
    warnings: list[str] | None = None,
) -> JobFinished:
    return JobFinished(
        event_id=f"{jid(stage, attempt)}:finished",
        occurred_at=NOW,
        job_id=jid(stage, attempt),
        run_id=RID,
        stage=stage,
        attempt=attempt,
        worker=worker,
        outcome="succeeded",
        summary=summary or {},
        approval_reasons=approval_reasons or [],
        warnings=warnings or [],
    )


def fail(
    stage: str,
    attempt: int = 1,
    message: str = "boom",
    *,
    dead: bool = False,
    diagnostics: list[Diagnostic] | None = None,
    worker: str = "w1",
    warnings: list[str] | None = None,
    failure: bool = True,
) -> JobFinished:
    return JobFinished(
        event_id=f"{jid(stage, attempt)}:finished",
        occurred_at=NOW,
        job_id=jid(stage, attempt),
        run_id=RID,
        stage=stage,
        attempt=attempt,
        worker=worker,
        outcome="failed",
        warnings=warnings or [],
        failure=StageFailure(message=message, diagnostics=diagnostics or [], dead_lettered=dead) if failure else None,
    )


def dead_letter(stage: str, attempt: int = 1, reason: str = "max deliveries (3) reached") -> JobDeadLettered:
    return JobDeadLettered(
        event_id=f"{jid(stage, attempt)}:dead",
        occurred_at=NOW,
        job_id=jid(stage, attempt),
        run_id=RID,
        stage=stage,
        attempt=attempt,
        reason=reason,
    )


def apply(run: Run, *inputs: Input, now: datetime = NOW) -> tuple[Run, Decision]:
    d = Decision(run)
    for inp in inputs:
        d = step(run, inp, now)
        assert d.run is not None
        run = d.run
    return run, d


# --------------------------------------------------------------------------- command helpers
def jobs(d: Decision) -> list[Job]:
    return [c.job for c in d.commands if isinstance(c, DispatchJob)]


def dispatched(d: Decision) -> list[str]:
    return [j.stage for j in jobs(d)]


def releases(d: Decision) -> list[ReleaseBranch]:
    return [c for c in d.commands if isinstance(c, ReleaseBranch)]


def logs(d: Decision, level: str | None = None) -> list[EmitLog]:
    return [c for c in d.commands if isinstance(c, EmitLog) and (level is None or c.level == level)]


def effects(d: Decision) -> list[Any]:
    """Every command except log lines."""
    return [c for c in d.commands if not isinstance(c, EmitLog)]


def statuses(run: Run) -> dict[str, StageStatus]:
    return {n: r.status for n, r in run.stages.items()}


RELEASE = ReleaseBranch(run_id=RID, repo=REPO, ref=REF)


def assert_unchanged(before: Run, d: Decision) -> None:
    assert d.run == before
    assert d.run is not None and d.run.updated_at == before.updated_at


def assert_released_once(d: Decision) -> None:
    assert releases(d) == [RELEASE]


# =========================================================================== creation
class TestCreation:
    def test_push_creates_queued_run_and_asks_for_a_slot(self) -> None:
        d = step(None, push(), NOW, LIMITS)
        run = d.run
        assert run is not None
        assert run.state is RunState.queued
        assert run.run_id == RID == run_id_for(EVENT_ID)
        assert (run.event_id, run.repo, run.url, run.ref, run.sha, run.before) == (
            EVENT_ID,
            REPO,
            URL,
            REF,
            SHA,
            BEFORE,
        )
        assert (run.author, run.message, run.source, run.retry_of) == ("alice", "change leaf1", "hook", None)
        assert run.created_at == run.updated_at == NOW
        assert run.started_at is None and run.finished_at is None
        assert run.limits == LIMITS
        assert run.pipeline is None and run.stages == {}
        assert effects(d) == [Enqueue(run_id=RID, repo=REPO, ref=REF, sha=SHA)]
        assert len(logs(d)) == 1 and logs(d)[0].run_id == RID

    def test_push_received_records_the_stream_sequence(self) -> None:
        d = step(None, PushReceived(event=push(), seq=42), NOW, LIMITS)
        run = d.run
        assert run is not None
        assert run.state is RunState.queued
        assert run.run_id == RID
        assert run.event_seq == 42
        assert run.limits == LIMITS
        assert effects(d) == [Enqueue(run_id=RID, repo=REPO, ref=REF, sha=SHA, seq=42)]
        # same run as the bare PushEvent would create, apart from the sequence
        bare = step(None, push(), NOW, LIMITS).run
        assert bare is not None and bare.event_seq == 0
        assert run.model_copy(update={"event_seq": 0}) == bare

    def test_duplicate_push_received_on_existing_run_changes_nothing(self) -> None:
        run = step(None, PushReceived(event=push(), seq=42), NOW).run
        assert run is not None
        for dup in (PushReceived(event=push(), seq=43), PushReceived(event=push(), seq=42), push()):
            d = step(run, dup, NOW + s(60))
            assert_unchanged(run, d)
            assert d.commands == []
        running = apply(run, Admitted())[0]
        d = step(running, PushReceived(event=push(), seq=99), NOW + s(60))
        assert_unchanged(running, d)
        assert d.commands == []

    def test_run_id_is_derived_from_the_event_id_only(self) -> None:
        a = step(None, push(), NOW).run
        b = step(None, push(occurred_at=NOW + s(99)), NOW + s(99)).run
        c = step(None, push(event_id="other@refs/heads/main@" + SHA), NOW).run
        assert a is not None and b is not None and c is not None
        assert a.run_id == b.run_id == RID
        assert c.run_id != RID
        assert c.run_id == run_id_for("other@refs/heads/main@" + SHA)

    def test_default_limits_when_none_given(self) -> None:
        run = step(None, push(), NOW, None).run
        assert run is not None and run.limits == Limits()

    def test_retry_push_records_its_origin(self) -> None:
        run = step(None, push(event_id="retry:r-1:abc", source="retry", retry_of="r-1"), NOW).run
        assert run is not None
        assert run.source == "retry" and run.retry_of == "r-1"
        assert run.run_id == run_id_for("retry:r-1:abc")

    @pytest.mark.parametrize("stage_of", ["queued", "running", "resolved", "terminal"])
    def test_duplicate_push_on_existing_run_changes_nothing(self, stage_of: str) -> None:
        if stage_of == "queued":
            run = created()
        elif stage_of == "running":
            run = started()
        elif stage_of == "resolved":
            run = resolved(LINEAR)[0]
        else:
            run = apply(created(), ctl("cancel"))[0]
        d = step(run, push(), NOW + s(60))
        assert_unchanged(run, d)
        assert d.commands == []

    @pytest.mark.parametrize(
        "inp",
        [
            Admitted(),
            Tick(),
            Recover(),
            Superseded(by="r-x"),
            ok("validate"),
            ctl("cancel"),
            PipelineRejected(message="x"),
        ],
        ids=lambda i: type(i).__name__,
    )
    def test_inputs_for_an_unknown_run_are_dropped(self, inp: Input) -> None:
        d = step(None, inp, NOW)
        assert d.run is None
        assert d.commands == []


# =========================================================================== admission
class TestAdmitted:
    def test_admitted_starts_the_run_and_resolves_the_pipeline(self) -> None:
        run = created()
        d = step(run, Admitted(), NOW + s(5))
        assert d.run is not None
        assert d.run.state is RunState.running
        assert d.run.started_at == NOW + s(5)
        assert d.run.updated_at == NOW + s(5)
        assert d.run.finished_at is None
        assert effects(d) == [ResolvePipeline(run_id=RID)]

    def test_admitted_twice_is_a_noop(self) -> None:
        run = started()
        d = step(run, Admitted(), NOW + s(5))
        assert_unchanged(run, d)
        assert d.commands == []

    def test_admitted_on_resolved_or_waiting_run_is_a_noop(self) -> None:
        run = resolved(APPROVAL)[0]
        run = apply(run, ok("validate"), ok("docs"))[0]
        assert run.state is RunState.waiting_approval
        for r in (resolved(LINEAR)[0], run):
            d = step(r, Admitted(), NOW + s(5))
            assert_unchanged(r, d)
            assert d.commands == []

    def test_admitted_on_run_canceled_while_queued_releases_the_slot(self) -> None:
        run = apply(created(), ctl("cancel"))[0]
        assert run.state is RunState.canceled
        d = step(run, Admitted(), NOW + s(5))
        assert_unchanged(run, d)
        assert effects(d) == [RELEASE]

    @pytest.mark.parametrize("state", TERMINAL)
    def test_admitted_on_any_terminal_run_releases_and_changes_nothing(self, state: RunState) -> None:
        run = created().model_copy(update={"state": state, "finished_at": NOW})
        d = step(run, Admitted(), NOW + s(5))
        assert_unchanged(run, d)
        assert effects(d) == [RELEASE]


class TestSuperseded:
    def test_superseded_from_queued(self) -> None:
        run = created()
        d = step(run, Superseded(by="r-newer"), NOW + s(3))
        assert d.run is not None
        assert d.run.state is RunState.superseded
        assert d.run.superseded_by == "r-newer"
        assert d.run.finished_at == NOW + s(3)
        assert d.run.updated_at == NOW + s(3)
        assert not jobs(d)
        assert not any(isinstance(c, (ResolvePipeline, Enqueue)) for c in d.commands)
        assert any("r-newer" in c.message for c in logs(d))
        assert logs(d, "error") == [] and logs(d, "warning") == []  # routine: a newer push took the branch

    def test_superseded_releases_the_branch_exactly_once(self) -> None:
        # Every transition into a terminal state emits exactly one ReleaseBranch (release of a
        # run that is no longer in the branch queue is a harmless no-op in admission).
        d = step(created(), Superseded(by="r-newer"), NOW + s(3))
        assert d.run is not None and d.run.state is RunState.superseded
        assert_released_once(d)

    def test_superseded_is_ignored_once_running(self) -> None:
        for run in (started(), resolved(LINEAR)[0]):
            d = step(run, Superseded(by="r-newer"), NOW + s(3))
            assert_unchanged(run, d)
            assert d.run is not None and d.run.superseded_by is None
            assert d.commands == []

    def test_superseded_is_ignored_on_terminal_run(self) -> None:
        run = apply(created(), ctl("cancel"))[0]
        d = step(run, Superseded(by="r-newer"), NOW + s(3))
        assert_unchanged(run, d)
        assert d.commands == []

    def test_push_with_a_newer_one_in_its_batch_is_created_superseded_and_never_queued(self) -> None:
        d = step(None, PushReceived(event=push(), seq=7, superseded_by="r-newer"), NOW, LIMITS)
        assert d.run is not None
        assert d.run.state is RunState.superseded and d.run.superseded_by == "r-newer"
        assert d.run.finished_at == NOW and d.run.event_seq == 7
        assert effects(d) == []  # no Enqueue: the branch never sees it, so nothing to release either
        assert [c.message.split(" (")[0] for c in logs(d)] == ["run created", "superseded by newer run r-newer"]
        # a redelivery of the same push finds the run: nothing more happens
        again = step(d.run, PushReceived(event=push(), seq=7, superseded_by="r-newer"), NOW + s(1))
        assert_unchanged(d.run, again)
        assert again.commands == []

    def test_superseded_by_is_ignored_for_a_run_that_exists(self) -> None:
        run = started()
        d = step(run, PushReceived(event=push(), seq=7, superseded_by="r-newer"), NOW + s(1))
        assert_unchanged(run, d)
        assert d.run is not None and d.run.state is RunState.running


# =========================================================================== pipeline resolution
class TestPipelineResolved:
    def test_stages_are_created_in_topological_order(self) -> None:
        text = """\
            version: 1
            name: shuffled
            stages:
              deploy: {needs: [render], uses: deployer}
              render: {needs: [validate]}
              rollback: {on_failure: [deploy]}
              validate: {}
            """
        run, d = resolved(text, changed_paths=["fabric/leaf1.yaml"])
        assert list(run.stages) == topo_order(spec(text)) == ["rollback", "validate", "render", "deploy"]
        assert run.stages["deploy"].kind == "deployer"
        assert run.stages["render"].kind == "render"
        assert run.stages["rollback"].on_failure is True
        assert run.stages["deploy"].on_failure is False
        assert run.pipeline == spec(text)
        assert run.pipeline_source == "repo"
        assert run.changed_paths == ["fabric/leaf1.yaml"]
        assert run.updated_at == NOW
        assert any("shuffled" in c.message for c in logs(d))

    def test_first_ready_stage_is_dispatched_with_a_complete_job(self) -> None:
        run, d = resolved(LINEAR, changed_paths=["fabric/leaf1.yaml"], now=NOW + s(1))
        assert jobs(d) == [
            Job(
                job_id=f"{RID}/validate/1",
                run_id=RID,
                stage="validate",
                kind="validate",
                attempt=1,
                repo=REPO,
                url=URL,
                ref=REF,
                sha=SHA,
                before=BEFORE,
                changed_paths=["fabric/leaf1.yaml"],
                options={},
                timeout_s=60.0,
                inputs={},
                downstream_kinds=["deployer", "render"],
                deploys_without_twin=[],  # its deploy is of kind "deployer"
            )
        ]
        rec = run.stages["validate"]
        assert rec.status is StageStatus.running
        assert rec.attempt == 1
        assert rec.job_id == f"{RID}/validate/1"
        assert rec.dispatched_at == NOW + s(1)
        assert rec.worker is None and rec.deliveries == 0
        # (timeout + ack_wait) * max_deliver + grace: every delivery may use its full timeout.
        assert rec.deadline == NOW + s(1) + s((60 + 10) * 3 + 5)
        assert statuses(run) == {
            "validate": StageStatus.running,
            "render": StageStatus.pending,
            "deploy": StageStatus.pending,
        }
        assert run.state is RunState.running
        assert releases(d) == []

    def test_options_and_timeout_flow_into_the_job(self) -> None:
        run = resolved(LINEAR)[0]
        run, d = apply(run, ok("validate"))
        run, d = apply(run, ok("render", summary={"devices": 6}))
        (job,) = jobs(d)
        assert job.stage == "deploy" and job.kind == "deployer"
        assert job.downstream_kinds == []  # nothing runs after it: a deploy stage would refuse to commit
        assert job.options == {"strategy": "waves"}
        assert job.timeout_s == 300.0
        assert job.job_id == f"{RID}/deploy/1"

    def test_when_branch_filter_skips_with_reason_and_skips_dependents(self) -> None:
        text = """\
            version: 1
            name: branches
            stages:
              validate: {}
              deploy: {needs: [validate], when: {branches: ["main", "release/*"]}}
              verify: {needs: [deploy]}
            """
        run, d = resolved(text, ref="refs/heads/feature/x", event_id="feature", now=NOW + s(1))
        assert run.stages["deploy"].status is StageStatus.skipped
        assert run.stages["deploy"].skip_reason == "when: branch or paths do not match"
        # verify cannot run: its need was skipped (decided at once, deploy is already done)
        assert run.stages["verify"].status is StageStatus.skipped
        assert run.stages["verify"].skip_reason == "not run: needs deploy, which skipped"
        assert run.stages["verify"].finished_at == NOW + s(1)
        assert [j.stage for j in jobs(d)] == ["validate"]
        assert run.state is RunState.running
        fin = JobFinished(
            event_id="x",
            occurred_at=NOW,
            job_id=Job.make_id(run.run_id, "validate", 1),
            run_id=run.run_id,
            stage="validate",
            attempt=1,
            worker="w1",
            outcome="succeeded",
        )
        d = step(run, fin, NOW + s(10))
        assert d.run is not None
        assert d.run.state is RunState.succeeded
        assert d.run.error is None
        assert releases(d) == [ReleaseBranch(run_id=run.run_id, repo=REPO, ref="refs/heads/feature/x")]

    @pytest.mark.parametrize("ref", ["refs/heads/main", "refs/heads/release/2024.05"])
    def test_when_branch_filter_matches(self, ref: str) -> None:
        text = """\
            version: 1
            name: branches
            stages:
              deploy: {when: {branches: ["main", "release/*"]}}
            """
        run, d = resolved(text, ref=ref, event_id=ref)
        assert run.stages["deploy"].status is StageStatus.running
        assert dispatched(d) == ["deploy"]

    @pytest.mark.parametrize(
        ("changed", "runs"),
        [
            (["docs/readme.md"], False),
            ([], False),
            (["fabric/leaf1.yaml"], True),
            (["docs/readme.md", "hosts/kvm1/host.yaml"], True),
            (None, True),  # unknown (new branch): matches
        ],
    )
    def test_when_paths_filter(self, changed: list[str] | None, runs: bool) -> None:
        text = """\
            version: 1
            name: paths
            stages:
              validate: {}
              render: {when: {paths: ["fabric/**", "hosts/**"]}}
            """
        run, d = resolved(text, changed_paths=changed)
        rec = run.stages["render"]
        if runs:
            assert rec.status is StageStatus.running
            assert dispatched(d) == ["validate", "render"]
            assert rec.skip_reason is None
        else:
            assert rec.status is StageStatus.skipped
            assert rec.skip_reason == "when: branch or paths do not match"
            assert dispatched(d) == ["validate"]

    def test_when_skipped_stage_records_when_it_finished(self) -> None:
        # Every other skip stamps finished_at; a stage skipped by its `when` filter finished
        # (was decided) at resolution time too.
        text = """\
            version: 1
            name: paths
            stages:
              validate: {}
              render: {when: {paths: ["fabric/**"]}}
            """
        run = resolved(text, changed_paths=["docs/x.md"], now=NOW + s(2))[0]
        assert run.stages["render"].status is StageStatus.skipped
        assert run.stages["render"].finished_at == NOW + s(2)

    def test_pipeline_where_everything_is_filtered_out_succeeds_at_once(self) -> None:
        text = """\
            version: 1
            name: nothing
            stages:
              render: {when: {paths: ["fabric/**"]}}
              deploy: {needs: [render]}
              rollback: {on_failure: [deploy]}
            """
        run, d = resolved(text, changed_paths=["docs/x.md"])
        assert run.state is RunState.succeeded
        assert run.finished_at == NOW
        assert run.error is None
        assert statuses(run) == {n: StageStatus.skipped for n in ("render", "deploy", "rollback")}
        assert run.stages["deploy"].skip_reason == "not run: needs render, which skipped"
        assert run.stages["rollback"].skip_reason == "no failure to handle"
        assert jobs(d) == []
        assert_released_once(d)

    def test_parallel_roots_dispatch_together(self) -> None:
        text = """\
            version: 1
            name: roots
            stages:
              validate: {}
              secscan: {}
              render: {needs: [validate, secscan]}
            """
        run, d = resolved(text)
        assert dispatched(d) == ["validate", "secscan"]
        assert run.stages["render"].status is StageStatus.pending

    def test_pipeline_resolved_twice_is_ignored(self) -> None:
        run = resolved(LINEAR)[0]
        d = step(run, PipelineResolved(spec=spec(DIAMOND), source="other"), NOW + s(5))
        assert_unchanged(run, d)
        assert d.commands == []

    def test_pipeline_resolved_while_queued_is_ignored(self) -> None:
        run = created()
        d = step(run, PipelineResolved(spec=spec(LINEAR), source="repo"), NOW + s(5))
        assert_unchanged(run, d)
        assert d.commands == []

    def test_pipeline_resolved_after_cancel_is_ignored(self) -> None:
        run = apply(started(), ctl("cancel"))[0]
        d = step(run, PipelineResolved(spec=spec(LINEAR), source="repo"), NOW + s(5))
        assert_unchanged(run, d)
        assert d.commands == []


class TestPipelineRejected:
    def test_rejected_fails_the_run_with_diagnostics_and_releases(self) -> None:
        diag = Diagnostic(
            file=".lintas/pipeline.yaml",
            line=4,
            column=7,
            path="stages.deploy.needs[0]",
            message="unknown stage 'rendr' in needs",
        )
        run = started()
        d = step(run, PipelineRejected(message="1 problem(s)", diagnostics=[diag]), NOW + s(2))
        assert d.run is not None
        assert d.run.state is RunState.failed
        assert d.run.error == "pipeline definition rejected: 1 problem(s)"
        assert d.run.diagnostics == [diag]
        assert d.run.finished_at == NOW + s(2)
        assert d.run.pipeline is None and d.run.stages == {}
        assert effects(d) == [RELEASE]
        assert logs(d, "error")

    def test_rejected_after_resolved_is_ignored(self) -> None:
        run = resolved(LINEAR)[0]
        d = step(run, PipelineRejected(message="late"), NOW + s(2))
        assert_unchanged(run, d)
        assert d.commands == []

    @pytest.mark.parametrize("make", [created, lambda: apply(started(), ctl("cancel"))[0]], ids=["queued", "canceled"])
    def test_rejected_when_not_running_is_ignored(self, make: Any) -> None:
        run = make()
        d = step(run, PipelineRejected(message="x"), NOW + s(2))
        assert_unchanged(run, d)
        assert d.commands == []


# =========================================================================== the DAG
class TestDag:
    def test_linear_stages_run_one_after_another_with_upstream_summaries(self) -> None:
        run, d = resolved(LINEAR)
        assert dispatched(d) == ["validate"]
        run, d = apply(run, ok("validate", summary={"files": 12}))
        assert run.stages["validate"].status is StageStatus.succeeded
        assert run.stages["validate"].summary == {"files": 12}
        (job,) = jobs(d)
        assert job.stage == "render" and job.job_id == f"{RID}/render/1"
        assert job.inputs == {"validate": {"files": 12}}
        assert job.options == {"format": "eos"}
        run, d = apply(run, ok("render", summary={"devices": 6}))
        (job,) = jobs(d)
        assert job.inputs == {"validate": {"files": 12}, "render": {"devices": 6}}
        run, d = apply(run, ok("deploy"), now=NOW + s(100))
        assert run.state is RunState.succeeded
        assert run.finished_at == NOW + s(100)
        assert run.error is None
        assert all(r.status is StageStatus.succeeded for r in run.stages.values())
        assert_released_once(d)
        assert jobs(d) == []

    def test_stage_waits_until_all_needs_succeeded(self) -> None:
        run, d = resolved(DIAMOND)
        run, d = apply(run, ok("validate", summary={"v": 1}))
        assert sorted(dispatched(d)) == ["policy", "secscan"]
        run, d = apply(run, ok("policy", summary={"p": 1}))
        assert jobs(d) == []
        assert run.stages["render"].status is StageStatus.pending
        run, d = apply(run, ok("secscan", summary={"s": 1}))
        (job,) = jobs(d)
        assert job.stage == "render"
        assert job.inputs == {"validate": {"v": 1}, "policy": {"p": 1}, "secscan": {"s": 1}}

    def test_parallel_branches_dispatch_in_one_decision(self) -> None:
        run, d = resolved(DIAMOND)
        run, d = apply(run, ok("validate"))
        assert dispatched(d) == ["policy", "secscan"]  # topo order, ties in declaration order
        assert run.stages["policy"].status is run.stages["secscan"].status is StageStatus.running
        assert [j.job_id for j in jobs(d)] == [f"{RID}/policy/1", f"{RID}/secscan/1"]

    def test_failed_need_skips_dependents_and_running_siblings_finish(self) -> None:
        run, d = resolved(DIAMOND)
        run, d = apply(run, ok("validate"))
        run, d = apply(run, fail("policy", message="ASN 65001 duplicated"), now=NOW + s(20))
        assert run.stages["policy"].status is StageStatus.failed
        assert run.stages["policy"].error == "ASN 65001 duplicated"
        assert run.stages["render"].status is StageStatus.skipped
        assert run.stages["render"].skip_reason is not None
        assert "policy" in run.stages["render"].skip_reason and "failed" in run.stages["render"].skip_reason
        assert run.stages["render"].finished_at == NOW + s(20)
        # the sibling already running is left to finish
        assert run.stages["secscan"].status is StageStatus.running
        assert run.state is RunState.running
        assert releases(d) == [] and jobs(d) == []
        run, d = apply(run, ok("secscan"), now=NOW + s(30))
        assert run.stages["secscan"].status is StageStatus.succeeded
        assert run.state is RunState.failed
        assert run.error == "stage policy failed: ASN 65001 duplicated"
        assert run.finished_at == NOW + s(30)
        assert_released_once(d)

    def test_fail_fast_skips_every_pending_normal_stage(self) -> None:
        text = """\
            version: 1
            name: ff
            stages:
              validate: {}
              lint: {}
              render: {needs: [lint]}
              deploy: {needs: [render]}
            """
        run, d = resolved(text)
        assert dispatched(d) == ["validate", "lint"]
        run, d = apply(run, fail("validate"))
        # lint is running: it finishes; render/deploy are pending: skipped now
        assert statuses(run) == {
            "validate": StageStatus.failed,
            "lint": StageStatus.running,
            "render": StageStatus.skipped,
            "deploy": StageStatus.skipped,
        }
        assert run.stages["render"].skip_reason == "not run: stage validate failed"
        assert run.stages["deploy"].skip_reason == "not run: stage validate failed"
        run, d = apply(run, ok("lint"))
        assert jobs(d) == []  # render is not dispatched after all
        assert run.stages["render"].status is StageStatus.skipped
        assert run.state is RunState.failed
        assert_released_once(d)

    def test_fail_fast_uses_first_failure_as_run_error(self) -> None:
        run = apply(resolved(DIAMOND)[0], ok("validate"))[0]
        run, d = apply(run, fail("secscan", message="secret found"))
        run, d = apply(run, fail("policy", message="policy broken"))
        assert run.state is RunState.failed
        assert run.error is not None and run.error.startswith("stage ")
        assert run.stages["render"].status is StageStatus.skipped
        assert_released_once(d)


# =========================================================================== job reports
class TestJobStarted:
    def test_started_records_worker_and_moves_deadline(self) -> None:
        run = resolved(LINEAR)[0]
        at = NOW + s(7)
        d = step(run, job_started("validate", worker="host-a:42", began=NOW + s(5)), at)
        assert d.run is not None
        rec = d.run.stages["validate"]
        assert rec.worker == "host-a:42"
        assert rec.started_at == NOW + s(5)  # when the stage began, not when its report arrived
        assert rec.deliveries == 1
        assert rec.status is StageStatus.running
        # a live worker owns it: its timeout plus one ack-wait plus grace
        assert rec.deadline == at + s(60 + 10 + 5)
        assert d.run.updated_at == at
        assert effects(d) == []
        assert logs(d, "warning") == []

    def test_a_reported_start_is_kept_between_the_dispatch_and_now(self) -> None:
        run = resolved(LINEAR)[0]
        dispatched = run.stages["validate"].dispatched_at
        assert dispatched is not None
        early = step(run, job_started("validate", began=dispatched - s(30)), NOW + s(7)).run
        late = step(run, job_started("validate", began=NOW + s(60)), NOW + s(7)).run
        assert early is not None and late is not None
        assert early.stages["validate"].started_at == dispatched  # a worker clock behind the engine's
        assert late.stages["validate"].started_at == NOW + s(7)  # or ahead of it

    def test_redelivery_keeps_first_start_counts_deliveries_and_warns(self) -> None:
        run = apply(resolved(LINEAR)[0], job_started("validate", worker="w1", began=NOW + s(1)), now=NOW + s(1))[0]
        d = step(run, job_started("validate", worker="w2", delivery=2, began=NOW + s(50)), NOW + s(50))
        assert d.run is not None
        rec = d.run.stages["validate"]
        assert rec.worker == "w2"
        assert rec.started_at == NOW + s(1)
        assert rec.deliveries == 2
        assert rec.deadline == NOW + s(50) + s(75)
        assert len(logs(d, "warning")) == 1 and logs(d, "warning")[0].stage == "validate"
        # a late report of delivery 1 does not lower the count
        d2 = step(d.run, job_started("validate", worker="w1", delivery=1), NOW + s(51))
        assert d2.run is not None and d2.run.stages["validate"].deliveries == 2

    def test_started_for_an_old_attempt_is_ignored(self) -> None:
        run = resolved(RETRY)[0]
        run = apply(run, fail("validate"))[0]
        run = apply(run, Tick(), now=NOW + s(10))[0]
        assert run.stages["validate"].job_id == f"{RID}/validate/2"
        d = step(run, job_started("validate", 1, worker="ghost"), NOW + s(11))
        assert_unchanged(run, d)
        assert d.commands == []

    def test_started_with_mismatched_stage_is_ignored(self) -> None:
        run = resolved(LINEAR)[0]
        ev = job_started("render", job_id=jid("validate"))
        d = step(run, ev, NOW + s(1))
        assert_unchanged(run, d)
        ev2 = job_started("nosuchstage")
        d2 = step(run, ev2, NOW + s(1))
        assert_unchanged(run, d2)
        assert d.commands == d2.commands == []

    def test_started_for_a_pending_stage_is_ignored(self) -> None:
        run = resolved(LINEAR)[0]
        d = step(run, job_started("render"), NOW + s(1))
        assert_unchanged(run, d)
        assert d.commands == []

    def test_started_on_terminal_run_is_ignored(self) -> None:
        run = apply(resolved(LINEAR)[0], ctl("cancel"))[0]
        d = step(run, job_started("validate"), NOW + s(1))
        assert_unchanged(run, d)
        assert d.commands == []


class TestJobFinished:
    def test_succeeded_records_result(self) -> None:
        run = apply(resolved(LINEAR)[0], job_started("validate", began=NOW + s(1)), now=NOW + s(1))[0]
        d = step(run, ok("validate", summary={"files": 3}, worker="w9"), NOW + s(9))
        assert d.run is not None
        rec = d.run.stages["validate"]
        assert rec.status is StageStatus.succeeded
        assert rec.summary == {"files": 3}
        assert rec.finished_at == NOW + s(9)
        assert rec.started_at == NOW + s(1)
        assert rec.duration_s == 8.0
        assert rec.worker == "w9"
        assert rec.deadline is None and rec.error is None
        assert d.run.updated_at == NOW + s(9)
        assert dispatched(d) == ["render"]

    def test_finished_without_started_sets_started_at(self) -> None:
        run = resolved(LINEAR)[0]
        # a short stage reports no start: it began its duration before its result was made
        result = ok("validate").model_copy(update={"occurred_at": NOW + s(8), "duration_s": 2.5})
        d = step(run, result, NOW + s(9))
        assert d.run is not None and d.run.stages["validate"].started_at == NOW + s(5.5)

    def test_warnings_and_approval_reasons_accumulate_without_duplicates(self) -> None:
        run = resolved(DIAMOND)[0]
        run = apply(run, ok("validate", warnings=["w-a", "w-b"], approval_reasons=["deletes leaf4"]))[0]
        run = apply(run, ok("policy", warnings=["w-b", "w-c"], approval_reasons=["deletes leaf4", "MTU change"]))[0]
        run = apply(run, ok("secscan", warnings=["w-a"]))[0]
        assert run.warnings == ["w-a", "w-b", "w-c"]
        assert run.approval_reasons == ["deletes leaf4", "MTU change"]

    def test_failed_without_retries_fails_stage_and_run(self) -> None:
        diag = Diagnostic(file="fabric/leaf1.yaml", line=3, message="bad asn")
        run = resolved(LINEAR)[0]
        d = step(run, fail("validate", message="1 problem(s)", diagnostics=[diag]), NOW + s(4))
        assert d.run is not None
        rec = d.run.stages["validate"]
        assert rec.status is StageStatus.failed
        assert rec.error == "1 problem(s)"
        assert rec.diagnostics == [diag]
        assert rec.finished_at == NOW + s(4)
        assert rec.deadline is None
        assert d.run.stages["render"].status is StageStatus.skipped
        assert d.run.stages["deploy"].status is StageStatus.skipped
        assert d.run.state is RunState.failed
        assert d.run.error == "stage validate failed: 1 problem(s)"
        assert d.run.finished_at == NOW + s(4)
        assert jobs(d) == []
        assert_released_once(d)
        assert logs(d, "error")

    def test_failed_without_failure_details(self) -> None:
        run = resolved(LINEAR)[0]
        d = step(run, fail("validate", failure=False), NOW + s(4))
        assert d.run is not None
        assert d.run.stages["validate"].error == "failed"
        assert d.run.error == "stage validate failed: failed"

    def test_redelivered_result_for_a_finished_stage_is_ignored(self) -> None:
        run = resolved(LINEAR)[0]
        run = apply(run, ok("validate", summary={"n": 1}))[0]
        for again in (ok("validate", summary={"n": 2}), fail("validate")):
            d = step(run, again, NOW + s(60))
            assert_unchanged(run, d)
            assert d.commands == []

    def test_redelivered_failure_after_run_failed_is_ignored(self) -> None:
        run = apply(resolved(LINEAR)[0], fail("validate"))[0]
        assert run.state is RunState.failed
        d = step(run, fail("validate"), NOW + s(60))
        assert_unchanged(run, d)
        assert d.commands == []

    def test_result_with_stale_job_id_is_ignored(self) -> None:
        run = resolved(LINEAR)[0]
        ev = ok("validate").model_copy(update={"job_id": jid("validate", 7)})
        d = step(run, ev, NOW + s(1))
        assert_unchanged(run, d)
        assert d.commands == []


# =========================================================================== retries
class TestRetries:
    def test_attempt_fails_then_backs_off_exponentially_then_fails(self) -> None:
        run, d = resolved(RETRY)
        assert [j.job_id for j in jobs(d)] == [f"{RID}/validate/1"]

        # attempt 1 fails: pending, retry after backoff * 2**0
        t1 = NOW + s(3)
        run, d = apply(run, fail("validate", 1, "device busy"), now=t1)
        rec = run.stages["validate"]
        assert rec.status is StageStatus.pending
        assert rec.not_before == t1 + s(10)
        assert rec.error == "device busy"
        assert rec.deadline is None
        assert rec.attempt == 1
        assert run.state is RunState.running
        assert jobs(d) == [] and releases(d) == []
        assert logs(d, "warning")

        # a tick before not_before dispatches nothing
        d = step(run, Tick(), t1 + s(10) - timedelta(microseconds=1))
        assert_unchanged(run, d)
        assert d.commands == []

        # at not_before: attempt 2
        t2 = t1 + s(10)
        run, d = apply(run, Tick(), now=t2)
        (job,) = jobs(d)
        assert job.job_id == f"{RID}/validate/2"
        assert job.attempt == 2
        rec = run.stages["validate"]
        assert rec.status is StageStatus.running
        assert rec.attempt == 2 and rec.job_id == job.job_id
        assert rec.not_before is None
        assert rec.dispatched_at == t2
        assert rec.deadline == t2 + s((60 + 10) * 3 + 5)

        # a late report from attempt 1 is ignored
        d = step(run, ok("validate", 1), t2 + s(1))
        assert_unchanged(run, d)

        # attempt 2 fails: backoff doubles
        t3 = t2 + s(5)
        run, d = apply(run, fail("validate", 2, "device busy"), now=t3)
        assert run.stages["validate"].status is StageStatus.pending
        assert run.stages["validate"].not_before == t3 + s(20)
        run, d = apply(run, Tick(), now=t3 + s(20))
        assert [j.job_id for j in jobs(d)] == [f"{RID}/validate/3"]

        # attempt 3 (retries: 2 exhausted) fails for good
        t4 = t3 + s(30)
        run, d = apply(run, fail("validate", 3, "device busy"), now=t4)
        rec = run.stages["validate"]
        assert rec.status is StageStatus.failed
        assert rec.attempt == 3
        assert rec.finished_at == t4
        assert rec.not_before is None
        assert run.stages["render"].status is StageStatus.skipped
        assert run.state is RunState.failed
        assert run.error == "stage validate failed: device busy"
        assert_released_once(d)

    def test_retry_then_success_continues_the_pipeline(self) -> None:
        run = resolved(RETRY)[0]
        run = apply(run, fail("validate", 1))[0]
        run = apply(run, Tick(), now=NOW + s(10))[0]
        run, d = apply(run, ok("validate", 2, summary={"ok": True}), now=NOW + s(12))
        assert run.stages["validate"].status is StageStatus.succeeded
        assert run.stages["validate"].error is None
        (job,) = jobs(d)
        assert job.stage == "render" and job.inputs == {"validate": {"ok": True}}

    def test_zero_backoff_redispatches_immediately(self) -> None:
        text = """\
            version: 1
            name: zero
            stages:
              validate: {retries: 1, backoff: 0}
            """
        run = resolved(text)[0]
        run, d = apply(run, fail("validate", 1), now=NOW + s(1))
        assert [j.job_id for j in jobs(d)] == [f"{RID}/validate/2"]
        assert run.stages["validate"].status is StageStatus.running

    def test_tick_with_nothing_due_changes_nothing(self) -> None:
        run = resolved(LINEAR)[0]
        d = step(run, Tick(), NOW + s(1))
        assert_unchanged(run, d)
        assert d.commands == []

    @pytest.mark.parametrize(
        "make", [created, lambda: apply(resolved(LINEAR)[0], ctl("cancel"))[0]], ids=["queued", "terminal"]
    )
    def test_tick_on_queued_or_terminal_run_is_ignored(self, make: Any) -> None:
        run = make()
        d = step(run, Tick(), NOW + s(100_000))
        assert_unchanged(run, d)
        assert d.commands == []


# =========================================================================== dead letters
class TestDeadLetter:
    def test_job_dead_lettered_fails_stage_and_run(self) -> None:
        run = resolved(LINEAR)[0]
        d = step(run, dead_letter("validate", reason="max deliveries (3) reached"), NOW + s(90))
        assert d.run is not None
        rec = d.run.stages["validate"]
        assert rec.status is StageStatus.failed
        assert rec.error is not None and "dead-lettered after 3 deliveries" in rec.error
        assert "max deliveries (3) reached" in rec.error
        assert d.run.state is RunState.failed
        assert d.run.error is not None and "dead-lettered after 3 deliveries" in d.run.error
        assert d.run.error == f"stage validate failed: {rec.error}"
        assert_released_once(d)

    def test_job_finished_with_dead_lettered_failure(self) -> None:
        run = resolved(LINEAR)[0]
        d = step(run, fail("validate", message="ConnectionError: leaf1 unreachable", dead=True), NOW + s(90))
        assert d.run is not None
        rec = d.run.stages["validate"]
        assert rec.status is StageStatus.failed
        assert rec.error == "dead-lettered after 3 deliveries: ConnectionError: leaf1 unreachable"
        assert d.run.state is RunState.failed
        assert d.run.error is not None and "dead-lettered after 3 deliveries" in d.run.error
        assert_released_once(d)

    def test_dead_letter_for_finished_or_stale_job_is_ignored(self) -> None:
        run = apply(resolved(LINEAR)[0], ok("validate"))[0]
        for ev in (dead_letter("validate"), dead_letter("render", 2)):
            d = step(run, ev, NOW + s(90))
            assert_unchanged(run, d)
            assert d.commands == []


# =========================================================================== deadlines
class TestDeadlines:
    def test_tick_before_deadline_does_nothing_at_deadline_fails_attempt(self) -> None:
        run = resolved(LINEAR)[0]
        deadline = run.stages["validate"].deadline
        assert deadline is not None
        d = step(run, Tick(), deadline - timedelta(microseconds=1))
        assert_unchanged(run, d)
        assert d.commands == []
        d = step(run, Tick(), deadline)
        assert d.run is not None
        rec = d.run.stages["validate"]
        assert rec.status is StageStatus.failed
        assert rec.error is not None and rec.error.startswith("no result from any worker")
        assert "deadline" in rec.error
        assert d.run.state is RunState.failed
        assert_released_once(d)

    def test_deadline_after_start_names_the_worker(self) -> None:
        run = apply(resolved(LINEAR)[0], job_started("validate", worker="host-b:7"), now=NOW + s(5))[0]
        deadline = run.stages["validate"].deadline
        assert deadline == NOW + s(5) + s(75)
        d = step(run, Tick(), deadline + s(1))
        assert d.run is not None
        err = d.run.stages["validate"].error
        assert err is not None and "no result from worker host-b:7" in err and "deadline" in err

    def test_missed_deadline_is_retried_when_retries_remain(self) -> None:
        run = resolved(RETRY)[0]
        deadline = run.stages["validate"].deadline
        assert deadline is not None
        run, d = apply(run, Tick(), now=deadline)
        rec = run.stages["validate"]
        assert rec.status is StageStatus.pending
        assert rec.not_before == deadline + s(10)
        assert run.state is RunState.running
        assert releases(d) == [] and jobs(d) == []
        # a late result of the vanished attempt is ignored
        d = step(run, ok("validate", 1), deadline + s(1))
        assert_unchanged(run, d)


# =========================================================================== approval
class TestApproval:
    def test_required_waits_only_when_nothing_else_runs(self) -> None:
        run, d = resolved(APPROVAL)
        run, d = apply(run, ok("validate"), now=NOW + s(10))
        # deploy is gated; docs (parallel) runs, so the run is still "running"
        assert dispatched(d) == ["docs"]
        assert run.state is RunState.running
        assert run.stages["deploy"].status is StageStatus.pending
        run, d = apply(run, ok("docs"), now=NOW + s(20))
        assert run.state is RunState.waiting_approval
        assert run.stages["deploy"].status is StageStatus.pending
        assert jobs(d) == [] and releases(d) == []
        assert any("waiting for approval" in c.message for c in logs(d, "warning"))
        assert run.updated_at == NOW + s(20)

    def test_a_retry_coming_due_while_waiting_runs_first(self) -> None:
        # "waiting_approval" only while nothing else runs: a due retry of a parallel stage
        # runs (state back to running), and the run waits again once it is done.
        text = """\
            version: 1
            name: approval-retry
            stages:
              validate: {timeout: 60}
              docs: {needs: [validate], timeout: 60, retries: 1, backoff: 30s}
              deploy: {needs: [validate], approval: required, timeout: 60}
            """
        run = apply(resolved(text)[0], ok("validate"))[0]
        run, d = apply(run, fail("docs", 1), now=NOW + s(10))
        assert run.state is RunState.waiting_approval
        assert run.stages["docs"].status is StageStatus.pending
        run, d = apply(run, Tick(), now=NOW + s(40))
        assert dispatched(d) == ["docs"]
        assert run.stages["docs"].attempt == 2
        assert run.state is RunState.running
        assert run.stages["deploy"].status is StageStatus.pending
        run, d = apply(run, ok("docs", 2), now=NOW + s(50))
        assert run.state is RunState.waiting_approval
        assert jobs(d) == []

    def test_tick_and_recover_keep_waiting(self) -> None:
        run = apply(resolved(APPROVAL)[0], ok("validate"), ok("docs"))[0]
        for inp in (Tick(), Recover()):
            d = step(run, inp, NOW + s(10_000))
            assert_unchanged(run, d)
            assert effects(d) == []

    def test_approve_dispatches_the_gated_stage(self) -> None:
        run = apply(resolved(APPROVAL)[0], ok("validate", summary={"v": 1}), ok("docs"))[0]
        d = step(run, ctl("approve", actor="carol", comment="LGTM"), NOW + s(30))
        assert d.run is not None
        assert d.run.state is RunState.running
        assert d.run.approved_by == "carol"
        (job,) = jobs(d)
        assert job.stage == "deploy" and job.job_id == f"{RID}/deploy/1"
        assert job.inputs == {"validate": {"v": 1}, "docs": {}}
        assert d.run.stages["deploy"].status is StageStatus.running
        assert any("carol" in c.message and "LGTM" in c.message for c in logs(d))
        run, d = apply(d.run, ok("deploy"))
        assert run.state is RunState.succeeded
        assert_released_once(d)

    def test_reject_cancels_the_run(self) -> None:
        run = apply(resolved(APPROVAL)[0], ok("validate"), ok("docs"))[0]
        d = step(run, ctl("reject", actor="dave", comment="not today"), NOW + s(30))
        assert d.run is not None
        assert d.run.state is RunState.canceled
        assert d.run.error == "rejected by dave: not today"
        assert d.run.canceled_by == "dave"
        assert d.run.finished_at == NOW + s(30)
        assert d.run.stages["deploy"].status is StageStatus.canceled
        assert d.run.stages["deploy"].finished_at == NOW + s(30)
        assert d.run.stages["validate"].status is StageStatus.succeeded
        assert jobs(d) == []
        assert_released_once(d)

    def test_reject_without_comment(self) -> None:
        run = apply(resolved(APPROVAL)[0], ok("validate"), ok("docs"))[0]
        d = step(run, ctl("reject", actor="dave"), NOW + s(30))
        assert d.run is not None and d.run.error == "rejected by dave"

    @pytest.mark.parametrize("action", ["approve", "reject"])
    def test_approve_or_reject_when_not_waiting_is_ignored_with_warning(self, action: str) -> None:
        queued = created()
        running = resolved(APPROVAL)[0]
        busy_gate = apply(resolved(APPROVAL)[0], ok("validate"))[0]  # gate pending, docs running
        assert busy_gate.state is RunState.running
        for run in (queued, running, busy_gate):
            d = step(run, ctl(action, actor="eve"), NOW + s(30))
            assert_unchanged(run, d)
            assert d.run is not None and d.run.approved_by is None
            assert effects(d) == []
            (warning,) = logs(d, "warning")
            assert "ignored" in warning.message and "eve" in warning.message

    def test_on_request_without_reasons_does_not_wait(self) -> None:
        run = apply(resolved(ON_REQUEST)[0], ok("validate"))[0]
        run, d = apply(run, ok("render"))
        assert dispatched(d) == ["deploy"]
        assert run.state is RunState.running

    def test_on_request_waits_when_an_earlier_stage_asked(self) -> None:
        run = apply(resolved(ON_REQUEST)[0], ok("validate", approval_reasons=["removes VLAN 120 from leaf3"]))[0]
        assert run.approval_reasons == ["removes VLAN 120 from leaf3"]
        run, d = apply(run, ok("render"))
        assert jobs(d) == []
        assert run.state is RunState.waiting_approval
        assert any("removes VLAN 120 from leaf3" in c.message for c in logs(d, "warning"))
        run, d = apply(run, ctl("approve", actor="carol"))
        assert dispatched(d) == ["deploy"]
        assert run.state is RunState.running

    def test_each_required_gate_needs_its_own_approval(self) -> None:
        # `approval: required` is per stage: approving deploy does not approve promote.
        text = """\
            version: 1
            name: two-gates
            stages:
              deploy: {approval: required}
              verify: {needs: [deploy]}
              promote: {needs: [verify], approval: required}
            """
        run = resolved(text)[0]
        assert run.state is RunState.waiting_approval
        run = apply(run, ctl("approve", actor="carol"), ok("deploy"))[0]
        run, d = apply(run, ok("verify"))
        assert jobs(d) == [], "promote dispatched on deploy's approval"
        assert run.state is RunState.waiting_approval

    def test_on_request_after_an_approval_still_asks_for_new_reasons(self) -> None:
        # Reasons raised after an approval was given have not been approved by anyone.
        text = """\
            version: 1
            name: late-reasons
            stages:
              deploy: {approval: required}
              plan: {needs: [deploy]}
              apply: {needs: [plan], approval: on_request}
            """
        run = resolved(text)[0]
        run = apply(run, ctl("approve", actor="carol"), ok("deploy"))[0]
        run, d = apply(run, ok("plan", approval_reasons=["deletes 40 devices"]))
        assert jobs(d) == [], "apply dispatched although 'deletes 40 devices' was never approved"
        assert run.state is RunState.waiting_approval


# =========================================================================== cancel / control
class TestCancel:
    def test_cancel_from_queued(self) -> None:
        run = created()
        d = step(run, ctl("cancel", actor="bob"), NOW + s(2))
        assert d.run is not None
        assert d.run.state is RunState.canceled
        assert d.run.canceled_by == "bob"
        assert d.run.error == "canceled by bob"
        assert d.run.finished_at == NOW + s(2)
        assert effects(d) == [RELEASE]

    def test_cancel_from_running_before_resolution(self) -> None:
        d = step(started(), ctl("cancel", comment="wrong branch"), NOW + s(2))
        assert d.run is not None
        assert d.run.state is RunState.canceled
        assert d.run.error == "canceled by bob: wrong branch"
        assert effects(d) == [RELEASE]

    def test_cancel_from_running_cancels_running_and_pending_stages(self) -> None:
        run = apply(resolved(HANDLERS)[0], ok("validate"))[0]
        assert run.stages["deploy"].status is StageStatus.running
        d = step(run, ctl("cancel"), NOW + s(40))
        assert d.run is not None
        st_ = statuses(d.run)
        assert st_["validate"] is StageStatus.succeeded
        assert st_["deploy"] is StageStatus.canceled
        assert st_["verify"] is StageStatus.canceled
        # handlers are not triggered by a cancel
        assert st_["rollback"] is StageStatus.canceled and not d.run.stages["rollback"].triggered
        assert d.run.stages["deploy"].deadline is None
        assert d.run.stages["deploy"].finished_at == NOW + s(40)
        assert d.run.state is RunState.canceled
        assert jobs(d) == []
        assert_released_once(d)
        # the canceled job's late result changes nothing
        d2 = step(d.run, ok("deploy"), NOW + s(41))
        assert_unchanged(d.run, d2)
        assert d2.commands == []

    def test_cancel_from_waiting_approval(self) -> None:
        run = apply(resolved(APPROVAL)[0], ok("validate"), ok("docs"))[0]
        assert run.state is RunState.waiting_approval
        d = step(run, ctl("cancel", actor="bob"), NOW + s(2))
        assert d.run is not None
        assert d.run.state is RunState.canceled
        assert d.run.stages["deploy"].status is StageStatus.canceled
        assert_released_once(d)

    @pytest.mark.parametrize("action", ["approve", "reject", "cancel", "retry"])
    @pytest.mark.parametrize("state", TERMINAL)
    def test_control_on_terminal_run_is_ignored(self, action: str, state: RunState) -> None:
        run = resolved(LINEAR)[0].model_copy(update={"state": state, "finished_at": NOW})
        d = step(run, ctl(action), NOW + s(5))
        assert_unchanged(run, d)
        assert effects(d) == []
        assert len(logs(d, "warning")) == 1

    def test_retry_control_on_live_run_does_nothing(self) -> None:
        run = resolved(LINEAR)[0]
        d = step(run, ctl("retry"), NOW + s(5))
        assert_unchanged(run, d)
        assert effects(d) == []


# =========================================================================== failure handlers
class TestFailureHandlers:
    def test_untriggered_handlers_are_skipped_on_success(self) -> None:
        run, d = resolved(HANDLERS)
        assert dispatched(d) == ["validate"]
        assert run.stages["rollback"].status is StageStatus.pending
        run = apply(run, ok("validate"), ok("deploy"))[0]
        run, d = apply(run, ok("verify"), now=NOW + s(50))
        assert run.state is RunState.succeeded
        for h in ("rollback", "cleanup"):
            assert run.stages[h].status is StageStatus.skipped
            assert run.stages[h].skip_reason == "no failure to handle"
            assert run.stages[h].finished_at == NOW + s(50)
            assert not run.stages[h].triggered
        assert jobs(d) == []
        assert_released_once(d)

    def test_failure_triggers_the_handler_and_rolls_back(self) -> None:
        run = apply(resolved(HANDLERS)[0], ok("validate", summary={"v": 1}))[0]
        run, d = apply(run, fail("deploy", message="leaf2 commit failed"), now=NOW + s(30))
        assert run.stages["deploy"].status is StageStatus.failed
        assert run.stages["verify"].status is StageStatus.skipped
        assert run.stages["rollback"].triggered
        assert run.stages["cleanup"].status is StageStatus.pending and not run.stages["cleanup"].triggered
        (job,) = jobs(d)
        assert job.stage == "rollback" and job.job_id == f"{RID}/rollback/1"
        assert job.inputs == {"validate": {"v": 1}}
        assert run.state is RunState.running
        assert releases(d) == []
        assert any(c.stage == "rollback" for c in logs(d, "warning"))

        run, d = apply(run, ok("rollback"), now=NOW + s(60))
        assert run.state is RunState.rolled_back
        assert run.error is not None
        assert "deploy" in run.error and "leaf2 commit failed" in run.error and "rollback" in run.error
        assert run.error == "stage deploy failed: leaf2 commit failed; rolled back by rollback"
        assert run.stages["cleanup"].status is StageStatus.skipped
        assert run.stages["cleanup"].skip_reason == "no failure to handle"
        assert run.finished_at == NOW + s(60)
        assert_released_once(d)

    def test_failed_handler_fails_the_run_loudly(self) -> None:
        run = apply(resolved(HANDLERS)[0], ok("validate"), ok("deploy"))[0]
        run = apply(run, fail("verify", message="BGP not established"))[0]
        assert run.stages["rollback"].triggered
        run, d = apply(run, fail("rollback", message="leaf2 unreachable"))
        assert run.state is RunState.failed
        assert run.error is not None
        assert "ROLLBACK FAILED" in run.error
        assert "stage verify failed: BGP not established" in run.error
        assert "rollback: leaf2 unreachable" in run.error
        assert_released_once(d)

    def test_handler_for_earliest_stage(self) -> None:
        run, d = apply(resolved(HANDLERS)[0], fail("validate"))
        assert dispatched(d) == ["cleanup"]
        assert statuses(run)["deploy"] is StageStatus.skipped
        assert statuses(run)["verify"] is StageStatus.skipped
        run, d = apply(run, ok("cleanup"))
        assert run.state is RunState.rolled_back
        assert run.stages["rollback"].skip_reason == "no failure to handle"
        assert_released_once(d)

    def test_handler_waits_for_running_normal_stage_before_concluding(self) -> None:
        text = """\
            version: 1
            name: handler-parallel
            stages:
              deploy: {}
              docs: {}
              rollback: {on_failure: [deploy]}
            """
        run = resolved(text)[0]
        run, d = apply(run, fail("deploy"))
        assert dispatched(d) == ["rollback"]
        run, d = apply(run, ok("rollback"))
        assert run.state is RunState.running  # docs still running
        assert releases(d) == []
        run, d = apply(run, ok("docs"))
        assert run.state is RunState.rolled_back
        assert_released_once(d)

    def test_handler_filtered_out_by_when_is_not_triggered(self) -> None:
        # A handler that does not apply to this push (its `when` filter) cannot have "failed":
        # the run failed plainly, no false ROLLBACK FAILED alarm.
        text = """\
            version: 1
            name: filtered-handler
            stages:
              deploy: {}
              rollback: {on_failure: [deploy], when: {branches: ["main"]}}
            """
        run = resolved(text, ref="refs/heads/feature/x", event_id="feature")[0]
        assert run.stages["rollback"].status is StageStatus.skipped
        fin = JobFinished(
            event_id="x",
            occurred_at=NOW,
            job_id=Job.make_id(run.run_id, "deploy", 1),
            run_id=run.run_id,
            stage="deploy",
            attempt=1,
            worker="w1",
            outcome="failed",
            failure=StageFailure(message="boom"),
        )
        d = step(run, fin, NOW + s(5))
        assert d.run is not None
        assert d.run.state is RunState.failed
        assert d.run.error == "stage deploy failed: boom"
        assert not d.run.stages["rollback"].triggered
        assert d.run.stages["rollback"].skip_reason == "when: branch or paths do not match"


# =========================================================================== recovery
class TestRecover:
    def test_recover_queued_re_enqueues(self) -> None:
        run = created()
        d = step(run, Recover(), NOW + s(100))
        assert_unchanged(run, d)
        assert effects(d) == [Enqueue(run_id=RID, repo=REPO, ref=REF, sha=SHA)]

    def test_recover_queued_re_enqueues_with_the_original_sequence(self) -> None:
        run = step(None, PushReceived(event=push(), seq=17), NOW).run
        assert run is not None
        d = step(run, Recover(), NOW + s(100))
        assert_unchanged(run, d)
        assert effects(d) == [Enqueue(run_id=RID, repo=REPO, ref=REF, sha=SHA, seq=17)]

    def test_recover_running_without_pipeline_resolves(self) -> None:
        run = started()
        d = step(run, Recover(), NOW + s(100))
        assert_unchanged(run, d)
        assert effects(d) == [ResolvePipeline(run_id=RID)]

    def test_recover_reissues_running_jobs_with_the_same_id(self) -> None:
        run, first = resolved(DIAMOND)
        run, first = apply(run, ok("validate", summary={"v": 1}))
        run = apply(run, job_started("policy"), now=NOW + s(1))[0]
        d = step(run, Recover(), NOW + s(100))
        assert_unchanged(run, d)
        assert jobs(d) == jobs(first)  # identical jobs: same ids, deduplicated downstream
        assert [j.job_id for j in jobs(d)] == [f"{RID}/policy/1", f"{RID}/secscan/1"]
        assert d.run is not None
        assert d.run.stages["policy"].attempt == d.run.stages["secscan"].attempt == 1
        assert releases(d) == []

    def test_recover_dispatches_a_retry_that_came_due(self) -> None:
        run = apply(resolved(RETRY)[0], fail("validate"))[0]
        d = step(run, Recover(), NOW + s(5))
        assert_unchanged(run, d)
        assert jobs(d) == []
        d = step(run, Recover(), NOW + s(10))
        assert [j.job_id for j in jobs(d)] == [f"{RID}/validate/2"]

    @pytest.mark.parametrize("state", TERMINAL)
    def test_recover_terminal_releases(self, state: RunState) -> None:
        run = resolved(LINEAR)[0].model_copy(update={"state": state, "finished_at": NOW})
        d = step(run, Recover(), NOW + s(100))
        assert_unchanged(run, d)
        assert effects(d) == [RELEASE]


# =========================================================================== purity
class TestPurity:
    def scenario(self) -> list[tuple[Input, datetime]]:
        return [
            (Admitted(), NOW),
            (PipelineResolved(spec=spec(HANDLERS), source="repo", changed_paths=["fabric/x"]), NOW + s(1)),
            (job_started("validate"), NOW + s(2)),
            (ok("validate", summary={"n": 1}, warnings=["w"]), NOW + s(3)),
            (fail("deploy"), NOW + s(4)),
            (Tick(), NOW + s(5)),
            (Recover(), NOW + s(6)),
            (ok("rollback"), NOW + s(7)),
            (ctl("cancel"), NOW + s(8)),
        ]

    def test_input_run_is_never_mutated_and_outputs_are_deterministic(self) -> None:
        run = created()
        for inp, now in self.scenario():
            snapshot = run.model_dump()
            a = decide(run, inp, now)
            b = decide(run, inp, now)
            assert run.model_dump() == snapshot
            assert a.run is not run and a.run is not None
            assert a.run == b.run
            assert a.commands == b.commands
            run = a.run
        assert run.state is RunState.rolled_back

    def test_updated_at_only_changes_when_something_changed(self) -> None:
        run = created()
        d = step(run, Admitted(), NOW + s(1))
        assert d.run is not None and d.run.updated_at == NOW + s(1)
        for noop in (Admitted(), Superseded(by="x"), Tick(), Recover(), push(), ctl("approve")):
            d2 = step(d.run, noop, NOW + s(99))
            assert d2.run == d.run
        run = resolved(LINEAR)[0]
        d3 = step(run, Tick(), NOW + s(99))
        assert d3.run is not None and d3.run.updated_at == NOW
        d4 = step(run, job_started("validate"), NOW + s(99))
        assert d4.run is not None and d4.run.updated_at == NOW + s(99)

    def test_returned_run_does_not_share_state_with_the_input(self) -> None:
        run = resolved(LINEAR)[0]
        d = step(run, ok("validate", summary={"k": [1]}), NOW + s(1))
        assert d.run is not None
        d.run.stages["render"].status = StageStatus.failed
        d.run.warnings.append("x")
        assert run.stages["render"].status is StageStatus.pending
        assert run.warnings == []

    def test_limits_are_frozen_into_the_run(self) -> None:
        run = resolved(LINEAR, limits=Limits(max_deliver=2, ack_wait_s=1, grace_s=1))[0]
        assert run.stages["validate"].deadline == NOW + s((60 + 1) * 2 + 1)
        d = step(run, dead_letter("validate"), NOW + s(1), limits=Limits(max_deliver=9))
        assert d.run is not None
        err = d.run.stages["validate"].error
        assert err is not None and "after 2 deliveries" in err


# =========================================================================== randomized
FUZZ = spec("""\
    version: 1
    name: fuzz
    stages:
      validate: {timeout: 60, retries: 1, backoff: 5s}
      policy: {needs: [validate], timeout: 60}
      secscan: {needs: [validate], timeout: 60, when: {paths: ["fabric/**"]}}
      deploy: {needs: [policy, secscan], approval: on_request, timeout: 60, retries: 1, backoff: 0}
      verify: {needs: [deploy], approval: required, timeout: 60}
      rollback: {on_failure: [deploy, verify], timeout: 60, retries: 1}
      cleanup: {on_failure: [validate], timeout: 60, when: {branches: [release/*]}}
    """)
FUZZ_STAGES = list(FUZZ.stages)
_ALLOWED = {
    RunState.queued: {RunState.queued, RunState.running, RunState.canceled, RunState.superseded},
    RunState.running: {
        RunState.running,
        RunState.waiting_approval,
        RunState.succeeded,
        RunState.failed,
        RunState.rolled_back,
        RunState.canceled,
    },
    RunState.waiting_approval: {
        RunState.waiting_approval,
        RunState.running,
        RunState.succeeded,
        RunState.failed,
        RunState.rolled_back,
        RunState.canceled,
    },
}


def _natural_next(run: Run) -> list[str]:
    """The inputs a healthy system would most likely deliver next."""
    if run.state is RunState.queued:
        return ["admitted", "admitted", "superseded", "cancel"]
    if run.state is RunState.waiting_approval:
        return ["approve"]
    if run.pipeline is None:
        return ["resolved", "resolved", "resolved", "rejected"]
    if any(r.status is StageStatus.running for r in run.stages.values()):
        return ["finished", "finished", "finished", "started"]
    return ["tick"]


@st.composite
def fuzz_input(draw: st.DrawFn, run: Run) -> Input:  # noqa: C901 - one draw per input type
    if draw(st.integers(0, 9)) < 7:
        kind = draw(st.sampled_from(_natural_next(run)))
    else:
        kind = draw(
            st.sampled_from(
                [
                    "admitted",
                    "admitted",
                    "superseded",
                    "resolved",
                    "resolved",
                    "rejected",
                    "tick",
                    "tick",
                    "recover",
                    "push",
                    "control",
                    "approve",
                    "started",
                    "finished",
                    "finished",
                    "finished",
                    "finished",
                    "dead",
                ]
            )
        )
    if kind == "admitted":
        return Admitted()
    if kind == "superseded":
        return Superseded(by="r-newer")
    if kind == "resolved":
        paths = draw(st.sampled_from([None, ["fabric/leaf1.yaml"], ["fabric/leaf1.yaml"], [], ["docs/x.md"]]))
        return PipelineResolved(spec=FUZZ, source="repo", changed_paths=paths)
    if kind == "rejected":
        return PipelineRejected(message="bad")
    if kind == "tick":
        return Tick()
    if kind == "recover":
        return Recover()
    if kind == "push":
        return draw(st.sampled_from([push(), PushReceived(event=push(), seq=7)]))
    if kind == "approve":
        return ctl(draw(st.sampled_from(["approve", "approve", "approve", "reject"])))
    if kind == "cancel":
        return ctl("cancel")
    if kind == "control":
        return ctl(draw(st.sampled_from(["approve", "reject", "reject", "cancel", "retry"])))
    running = [n for n, r in run.stages.items() if r.status is StageStatus.running]
    if running and draw(st.integers(0, 3)):  # mostly: a report about a live job
        stage = draw(st.sampled_from(running))
        attempt = run.stages[stage].attempt
    else:  # stale, early or bogus reports
        stage = draw(st.sampled_from(FUZZ_STAGES))
        attempt = draw(st.integers(1, 3))
    if kind == "started":
        return job_started(stage, attempt, delivery=draw(st.integers(1, 3)), worker=draw(st.sampled_from(["w1", "w2"])))
    if kind == "dead":
        return dead_letter(stage, attempt)
    outcome = draw(st.sampled_from(["ok", "ok", "ok", "ok", "fail", "fail", "dead"]))
    if outcome == "ok":
        return ok(
            stage,
            attempt,
            summary={"stage": stage},
            approval_reasons=draw(st.sampled_from([[], [], ["risky"]])),
            warnings=draw(st.sampled_from([[], ["warn"]])),
        )
    return fail(stage, attempt, dead=outcome == "dead")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_input_sequences_keep_the_run_invariants(data: st.DataObject) -> None:
    now = NOW
    d = decide(None, PushReceived(event=push(), seq=data.draw(st.integers(0, 5), label="seq")), now, LIMITS)
    assert d.run is not None
    run = d.run
    seen_jobs: set[str] = set()
    for _ in range(data.draw(st.integers(1, 60), label="length")):
        inp = data.draw(fuzz_input(run), label="input")
        now = now + s(data.draw(st.sampled_from([0, 1, 5, 10, 60, 100, 300, 1000]), label="dt"))
        snapshot = run.model_dump()
        d = decide(run, inp, now)  # must never raise
        assert run.model_dump() == snapshot, "input mutated"
        assert d.run is not None
        new = d.run
        rel = releases(d)

        if run.state.terminal:
            assert new == run, f"terminal run changed by {type(inp).__name__}"
            assert len(rel) <= 1
            if rel:
                assert isinstance(inp, (Admitted, Recover))
            assert not jobs(d)
        else:
            assert new.state in _ALLOWED[run.state], f"{run.state} -> {new.state} on {type(inp).__name__}"
            if new.state.terminal:
                assert rel == [RELEASE], f"{run.state} -> {new.state} on {type(inp).__name__}: releases {rel}"
            else:
                assert rel == []
        if new.state.terminal:
            assert all(r.status.done for r in new.stages.values()), statuses(new)
            assert new.finished_at is not None
        if new.state is RunState.waiting_approval:
            assert not any(r.status is StageStatus.running for r in new.stages.values())
        for name, rec in new.stages.items():
            if rec.status is StageStatus.running:
                assert rec.job_id == jid(name, rec.attempt)
                assert rec.deadline is not None
        for job in jobs(d):
            rec = new.stages[job.stage]
            assert rec.status is StageStatus.running and rec.job_id == job.job_id
            if not isinstance(inp, Recover):
                assert job.job_id not in seen_jobs, f"job {job.job_id} dispatched twice"
            seen_jobs.add(job.job_id)
        assert new.updated_at == (
            run.updated_at if new.model_dump(exclude={"updated_at"}) == run.model_dump(exclude={"updated_at"}) else now
        )
        run = new


def test_random_walk_reaches_every_terminal_state() -> None:
    """Sanity check for the fuzz pool: the scenarios it can build cover every end state."""
    reached = set()
    for script in (
        [ctl("cancel")],
        [Superseded(by="r-newer")],
        [Admitted(), PipelineRejected(message="x")],
        [
            Admitted(),
            PipelineResolved(spec=FUZZ, source="repo", changed_paths=["fabric/leaf1.yaml"]),
            ok("validate"),
            ok("policy"),
            ok("secscan"),
            ok("deploy"),
            ctl("approve"),
            ok("verify"),
        ],
        [
            Admitted(),
            PipelineResolved(spec=FUZZ, source="repo", changed_paths=["fabric/leaf1.yaml"]),
            ok("validate"),
            ok("policy"),
            ok("secscan"),
            fail("deploy", 1),
            fail("deploy", 2),
            ok("rollback"),
        ],
    ):
        run = created()
        for inp in script:
            d = step(run, inp, NOW)
            assert d.run is not None
            run = d.run
        reached.add(run.state)
        if run.state is RunState.succeeded:
            assert statuses(run)["verify"] is StageStatus.succeeded
        if run.state is RunState.rolled_back:
            assert run.stages["deploy"].attempt == 2 and statuses(run)["rollback"] is StageStatus.succeeded
    assert reached == set(TERMINAL)


def test_decide_never_issues_admission_commands() -> None:
    """StartRun / SupersedeRun belong to branch admission; decide only asks for a slot."""
    run = created()
    for inp, now in TestPurity().scenario():
        d = step(run, inp, now)
        assert not any(isinstance(c, (StartRun, SupersedeRun)) for c in d.commands)
        assert d.run is not None
        run = d.run


class TestRunRefused:
    """A stale push (engine/freshness.py) is refused before any stage runs (issue 13)."""

    @pytest.mark.parametrize("state", ["superseded", "failed"])
    def test_refused_ends_the_run_with_the_reason_and_releases(self, state: str) -> None:
        run = started()
        d = step(run, RunRefused(reason="stale push: x", state=state), NOW + s(2))  # type: ignore[arg-type]
        assert d.run is not None and d.run.state is RunState(state)
        assert d.run.error == "stale push: x" and d.run.stages == {} and d.run.pipeline is None
        assert d.run.finished_at == NOW + s(2)
        assert effects(d) == [RELEASE]
        assert not any(isinstance(c, DispatchJob) for c in d.commands)
        # a stale push superseded by a newer head is routine (most pushes of a burst): info;
        # an older commit than the deployed one is refused as a failure: error
        assert [c.level for c in logs(d)] == ["info" if state == "superseded" else "error"]

    def test_refused_after_resolved_is_ignored(self) -> None:
        run = resolved(LINEAR)[0]
        d = step(run, RunRefused(reason="late"), NOW + s(2))
        assert_unchanged(run, d)

    def test_an_operator_note_is_recorded_on_the_run(self) -> None:
        run = started()
        note = "operator trigger by olga of aaaaaaaaaaaa, which is not the head of refs/heads/main (head: bbbbbbbbbbbb)"
        d = step(run, PipelineResolved(spec=spec(LINEAR), source="x", notes=[note]), NOW + s(2))
        assert d.run is not None and d.run.warnings == [note]
        assert [c.message for c in logs(d, "warning")] == [note]


@pytest.mark.parametrize("required", [True, False])
def test_the_pipelines_twin_option_is_on_every_job(required: bool) -> None:
    """``twin: {required: ...}`` (issue 18) reaches the twin stage's job (and every other's)."""
    text = f"""\
    version: 1
    name: twin
    twin: {{required: {str(required).lower()}}}
    stages:
      validate: {{timeout: 60}}
      prove: {{uses: twin, timeout: 60}}
    """
    _, d = resolved(text)
    got = {j.stage: j.twin_required for j in jobs(d)}
    assert got == {"validate": required, "prove": required}


def test_a_twin_stages_approval_reason_holds_deploy_and_the_approval_reaches_its_job() -> None:
    """Issue 18: a twin stage (any stage, not only policy) may raise an approval reason; deploy with
    ``approval: on_request`` waits for it, and its job then carries the reasons its approval covered
    (``Job.approved_reasons``: the deploy's backstop checks the twin's hosts were approved)."""
    text = """\
    version: 1
    name: twin-approval
    stages:
      render: {timeout: 60}
      policy: {needs: [render], timeout: 60}
      twin: {needs: [policy], timeout: 60}
      side: {needs: [policy], uses: deploy, timeout: 60}
      deploy: {needs: [twin], approval: on_request, timeout: 60}
    """
    reason = "twin required, but hosts kvm-uat-01 are not built in twins: approve to deploy them unproven"
    run = apply(resolved(text)[0], ok("render"))[0]
    run, d = apply(run, ok("policy"))
    got = {j.stage: j.deploys_without_twin for j in jobs(d)}
    assert got == {"twin": [], "side": []}  # twin guards deploy; side is after policy, not after twin
    run = apply(run, ok("side"))[0]
    run, d = apply(run, ok("twin", approval_reasons=[reason]))
    assert jobs(d) == [] and run.state is RunState.waiting_approval
    run, d = apply(run, ctl("approve", actor="carol"))
    (job,) = jobs(d)
    assert (job.stage, job.approved_reasons) == ("deploy", [reason])


def test_the_policy_job_names_the_deploys_no_twin_guards() -> None:
    text = """\
    version: 1
    name: parallel
    stages:
      render: {timeout: 60}
      policy: {needs: [render], timeout: 60}
      twin: {needs: [policy], timeout: 60}
      deploy: {needs: [policy], timeout: 60}
    """
    _, d = apply(resolved(text)[0], ok("render"))
    (job,) = jobs(d)
    assert (job.stage, job.deploys_without_twin) == ("policy", ["deploy"])
