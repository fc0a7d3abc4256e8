"""The orchestrator's brain: ``decide(run, input, now) -> Decision``.

Pure: no I/O, no clock, no randomness. The effects layer (:mod:`engine.runner`)
persists ``Decision.run`` with compare-and-set and then carries out the commands.
Replaying the same inputs gives the same decisions, which is what lets a restarted
engine rebuild from KV and carry on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from lintas.engine.commands import (
    Admitted,
    Command,
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
    Superseded,
    Tick,
)
from lintas.engine.diagnostics import Diagnostic
from lintas.engine.events import ControlEvent, Job, JobDeadLettered, JobFinished, JobStarted, PushEvent
from lintas.engine.pipeline import applies, deploys_without_twin, downstream, topo_order
from lintas.engine.state import Approval, Limits, Run, RunState, StageRecord, StageStatus

LogLevel = Literal["info", "warning", "error"]


@dataclass
class Decision:
    run: Run | None
    commands: list[Command] = field(default_factory=list)


def decide(run: Run | None, event: Input, now: datetime, limits: Limits | None = None) -> Decision:  # noqa: C901 - one branch per input type of the state machine, each a call
    """Apply one input to one run. ``run`` is never mutated; a changed copy is returned."""
    if run is None:
        if isinstance(event, PushReceived):
            d = _create(event.event, now, limits or Limits(), event.seq)
            if event.superseded_by is not None and d.run is not None:
                _born_superseded(d, event.superseded_by, now)
            return d
        if isinstance(event, PushEvent):
            return _create(event, now, limits or Limits(), 0)
        return Decision(None)
    original = run
    run = _clone(run)
    d = Decision(run)
    if isinstance(event, Admitted):
        _on_admitted(d, now)
    elif isinstance(event, Superseded):
        _on_superseded(d, event, now)
    elif isinstance(event, PipelineResolved):
        _on_resolved(d, event, now)
    elif isinstance(event, PipelineRejected):
        _on_rejected(d, event, now)
    elif isinstance(event, RunRefused):
        _on_refused(d, event, now)
    elif isinstance(event, ControlEvent):
        _on_control(d, event, now)
    elif isinstance(event, JobStarted):
        _on_started(d, event, now)
    elif isinstance(event, JobFinished):
        _on_finished(d, event, now)
    elif isinstance(event, JobDeadLettered):
        _on_dead_lettered(d, event, now)
    elif isinstance(event, Tick):
        _on_tick(d, now)
    elif isinstance(event, Recover):
        _on_recover(d, now)
    # A push for an existing run is a duplicate: nothing to do.
    if run != original:
        run.updated_at = now
    return d


def _clone(run: Run) -> Run:
    """Copy exactly what decisions mutate; share the rest (the pipeline spec is frozen)."""
    return run.model_copy(
        update={
            "stages": {name: rec.model_copy() for name, rec in run.stages.items()},
            "warnings": list(run.warnings),
            "approval_reasons": list(run.approval_reasons),
            "diagnostics": list(run.diagnostics),
            "approvals": list(run.approvals),
        }
    )


# --------------------------------------------------------------------------- handlers
def _create(ev: PushEvent, now: datetime, limits: Limits, seq: int) -> Decision:
    run = Run(
        run_id=ev.run_id,
        event_id=ev.event_id,
        repo=ev.repo,
        url=ev.url,
        ref=ev.ref,
        sha=ev.sha,
        before=ev.before,
        author=ev.author,
        message=ev.message,
        source=ev.source,
        retry_of=ev.retry_of,
        event_seq=seq,
        created_at=now,
        updated_at=now,
        limits=limits,
    )
    return Decision(
        run,
        [
            Enqueue(run_id=run.run_id, repo=run.repo, ref=run.ref, sha=run.sha, seq=seq),
            _log(run, f"run created ({ev.source}) for {ev.repo} {ev.ref} @ {ev.sha[:8]} by {ev.author or '?'}"),
        ],
    )


def _born_superseded(d: Decision, by: str, now: datetime) -> None:
    """A push followed in the same batch by newer pushes of its branch, in one chain of commits
    (see :meth:`engine.runner.Engine._scan_pushes`): the run is created already superseded (one
    write, never queued). It would have been superseded anyway unless the branch was idle when
    it arrived and it started, to be refused as stale once the newer push moved the branch."""
    run = _run(d)
    run.state = RunState.superseded
    run.superseded_by = by
    run.finished_at = now
    d.commands = [c for c in d.commands if not isinstance(c, Enqueue)]
    d.commands.append(_log(run, f"superseded by newer run {by} (a newer push to the branch in the same batch)"))


def _on_admitted(d: Decision, now: datetime) -> None:
    run = _run(d)
    if run.state.terminal:
        d.commands.append(_release(run))  # canceled while queued: let the branch move on
        return
    if run.state is not RunState.queued:
        return
    run.state = RunState.running
    run.started_at = now
    d.commands += [ResolvePipeline(run_id=run.run_id), _log(run, "run started")]


def _on_superseded(d: Decision, ev: Superseded, now: datetime) -> None:
    run = _run(d)
    if run.state is not RunState.queued:
        return
    run.state = RunState.superseded
    run.superseded_by = ev.by
    run.finished_at = now
    d.commands += [_log(run, f"superseded by newer run {ev.by}"), _release(run)]


def _on_resolved(d: Decision, ev: PipelineResolved, now: datetime) -> None:
    run = _run(d)
    if run.state is not RunState.running or run.pipeline is not None:
        return
    run.pipeline = ev.spec
    run.pipeline_source = ev.source
    run.changed_paths = ev.changed_paths
    for note in ev.notes:
        if note not in run.warnings:
            run.warnings.append(note)
        d.commands.append(_log(run, note, "warning"))
    for name in topo_order(ev.spec):
        spec = ev.spec.stages[name]
        rec = StageRecord(name=name, kind=spec.kind, on_failure=bool(spec.on_failure))
        if not applies(spec.when, ref=run.ref, changed_paths=ev.changed_paths):
            _skip(rec, "when: branch or paths do not match", now)
        run.stages[name] = rec
    d.commands.append(_log(run, f"pipeline '{ev.spec.name}' from {ev.source}: {', '.join(run.stages)}"))
    _advance(d, now)


def _on_rejected(d: Decision, ev: PipelineRejected, now: datetime) -> None:
    run = _run(d)
    if run.state is not RunState.running or run.pipeline is not None:
        return
    run.diagnostics = list(ev.diagnostics)
    _finish(d, RunState.failed, f"pipeline definition rejected: {ev.message}", now)


def _on_refused(d: Decision, ev: RunRefused, now: datetime) -> None:
    run = _run(d)
    if run.state is not RunState.running or run.pipeline is not None:
        return
    _finish(d, RunState(ev.state), ev.reason, now)


def _on_control(d: Decision, ev: ControlEvent, now: datetime) -> None:
    run = _run(d)
    if run.state.terminal:
        d.commands.append(_log(run, f"{ev.action} by {ev.actor} ignored: run is {run.state}", "warning"))
        return
    if ev.action == "cancel":
        run.canceled_by = ev.actor
        _cancel_stages(run, now)
        _finish(d, RunState.canceled, f"canceled by {ev.actor}" + (f": {ev.comment}" if ev.comment else ""), now)
    elif ev.action == "reject":
        if run.state is not RunState.waiting_approval:
            d.commands.append(_log(run, f"reject by {ev.actor} ignored: run is not waiting for approval", "warning"))
            return
        run.canceled_by = ev.actor
        _cancel_stages(run, now)
        _finish(d, RunState.canceled, f"rejected by {ev.actor}" + (f": {ev.comment}" if ev.comment else ""), now)
    elif ev.action == "approve":
        if run.state is not RunState.waiting_approval:
            d.commands.append(_log(run, f"approve by {ev.actor} ignored: run is not waiting for approval", "warning"))
            return
        gates = [r for r in run.stages.values() if r.awaiting_approval]
        for rec in gates:
            rec.approved_by = ev.actor
            rec.approved_reasons = list(run.approval_reasons)
            rec.awaiting_approval = False
        run.approved_by = ev.actor
        run.approvals = [
            *run.approvals,
            Approval(
                actor=ev.actor,
                at=now,
                stages=[r.name for r in gates],
                reasons=list(run.approval_reasons),
                comment=ev.comment,
            ),
        ]
        run.state = RunState.running
        names = ", ".join(r.name for r in gates)
        d.commands.append(_log(run, f"approved by {ev.actor} for {names}" + (f": {ev.comment}" if ev.comment else "")))
        _advance(d, now)
    # "retry" creates a new run; the effects layer handles it, not this run.


def _current(run: Run, stage: str, job_id: str) -> StageRecord | None:
    """The stage record if this report is about its live attempt; stale reports are dropped."""
    if run.state.terminal:
        return None
    rec = run.stages.get(stage)
    if rec is None or rec.job_id != job_id or rec.status is not StageStatus.running:
        return None
    return rec


def _on_started(d: Decision, ev: JobStarted, now: datetime) -> None:
    run = _run(d)
    rec = _current(run, ev.stage, ev.job_id)
    if rec is None:
        return
    rec.worker = ev.worker
    rec.deliveries = max(rec.deliveries, ev.delivery)
    if rec.started_at is None:
        rec.started_at = _reported(ev.occurred_at, rec.dispatched_at, now)
    # A live worker owns it now: the deadline is its timeout plus one ack-wait (redelivery).
    rec.deadline = now + _s(_timeout(run, rec) + run.limits.ack_wait_s + run.limits.grace_s)
    if ev.delivery > 1:
        d.commands.append(_log(run, f"redelivered (delivery {ev.delivery}) to {ev.worker}", "warning", rec.name))


def _on_finished(d: Decision, ev: JobFinished, now: datetime) -> None:
    run = _run(d)
    rec = _current(run, ev.stage, ev.job_id)
    if rec is None:
        return
    rec.worker = ev.worker
    # A short stage's worker does not report its start (engine/worker.py): its result stands
    # for one delivery, begun the stage's duration ago (not before the dispatch).
    rec.deliveries = max(rec.deliveries, 1)
    if rec.started_at is None:
        rec.started_at = _reported(ev.occurred_at - _s(ev.duration_s), rec.dispatched_at, now)
    rec.summary = dict(ev.summary)
    for w in ev.warnings:
        if w not in run.warnings:
            run.warnings.append(w)
    if ev.outcome == "succeeded":
        rec.status = StageStatus.succeeded
        rec.finished_at = now
        rec.deadline = None
        rec.error = None
        rec.diagnostics = []
        for reason in ev.approval_reasons:
            if reason not in run.approval_reasons:
                run.approval_reasons.append(reason)
        d.commands.append(_log(run, "stage succeeded", stage=rec.name))
    else:
        failure = ev.failure
        msg = failure.message if failure else "failed"
        diags = list(failure.diagnostics) if failure else []
        if failure and failure.dead_lettered:
            msg = f"dead-lettered after {run.limits.max_deliver} deliveries: {msg}"
        _fail_attempt(d, rec, msg, diags, now)
    _advance(d, now)


def _on_dead_lettered(d: Decision, ev: JobDeadLettered, now: datetime) -> None:
    run = _run(d)
    rec = _current(run, ev.stage, ev.job_id)
    if rec is None:
        return
    _fail_attempt(d, rec, f"dead-lettered after {run.limits.max_deliver} deliveries: {ev.reason}", [], now)
    _advance(d, now)


def _on_tick(d: Decision, now: datetime) -> None:
    run = _run(d)
    if run.state not in (RunState.running, RunState.waiting_approval):
        return
    for rec in run.stages.values():
        if rec.status is StageStatus.running and rec.deadline is not None and now >= rec.deadline:
            who = f"worker {rec.worker}" if rec.worker else "any worker"
            _fail_attempt(d, rec, f"no result from {who} by the deadline (worker vanished or none running)", [], now)
    _advance(d, now)


def _on_recover(d: Decision, now: datetime) -> None:
    run = _run(d)
    if run.state is RunState.queued:
        d.commands.append(Enqueue(run_id=run.run_id, repo=run.repo, ref=run.ref, sha=run.sha, seq=run.event_seq))
        return
    if run.state.terminal:
        d.commands.append(_release(run))
        return
    if run.pipeline is None:
        d.commands.append(ResolvePipeline(run_id=run.run_id))
        return
    for rec in run.stages.values():
        if rec.status is StageStatus.running:
            d.commands.append(DispatchJob(job=_job(run, rec)))  # same job id: deduplicated downstream
    _advance(d, now)


# --------------------------------------------------------------------------- the DAG walk
def _fail_attempt(d: Decision, rec: StageRecord, msg: str, diags: list[Diagnostic], now: datetime) -> None:
    run = _run(d)
    assert run.pipeline is not None
    spec = run.pipeline.stages[rec.name]
    rec.error = msg
    rec.diagnostics = diags
    rec.deadline = None
    if rec.attempt <= spec.retries:
        delay = spec.backoff_s * (2 ** (rec.attempt - 1))
        rec.status = StageStatus.pending
        rec.not_before = now + _s(delay)
        d.commands.append(
            _log(run, f"attempt {rec.attempt} failed: {msg}; retrying in {delay:g}s", "warning", rec.name)
        )
    else:
        rec.status = StageStatus.failed
        rec.finished_at = now
        d.commands.append(_log(run, f"stage failed: {msg}", "error", rec.name))


def _advance(d: Decision, now: datetime) -> None:  # noqa: C901 - the stage-readiness rules in order, read top to bottom
    """Dispatch what is ready, skip what cannot run, finish the run when nothing is left."""
    run = _run(d)
    if run.state not in (RunState.running, RunState.waiting_approval) or run.pipeline is None:
        return
    spec = run.pipeline
    normal_failed = [r.name for r in run.stages.values() if not r.on_failure and r.status is StageStatus.failed]
    for rec in run.stages.values():
        handles = spec.stages[rec.name].on_failure
        if (
            rec.on_failure
            and not rec.triggered
            and rec.status is StageStatus.pending  # a handler filtered out by `when` stays skipped
            and any(run.stages[t].status is StageStatus.failed for t in handles)
        ):
            rec.triggered = True
            d.commands.append(_log(run, "failure handler triggered", "warning", rec.name))
    waiting = False
    for name in topo_order(spec):
        rec = run.stages[name]
        if rec.status is not StageStatus.pending:
            continue
        if rec.on_failure and not rec.triggered:
            continue
        if not rec.on_failure and normal_failed:
            _skip(rec, f"not run: stage {normal_failed[0]} failed", now)
            continue
        needs = [run.stages[n] for n in spec.stages[name].needs]
        if any(not n.status.done for n in needs):
            continue
        blocked = [n for n in needs if n.status is not StageStatus.succeeded]
        if blocked:
            _skip(rec, f"not run: needs {blocked[0].name}, which {blocked[0].status.value}", now)
            continue
        if rec.not_before is not None and now < rec.not_before:
            continue
        if _needs_approval(run, rec):
            rec.awaiting_approval = True
            waiting = True
            continue
        _dispatch(d, rec, now)
    busy = any(r.status is StageStatus.running for r in run.stages.values())
    open_ = any(r.status is StageStatus.pending and (not r.on_failure or r.triggered) for r in run.stages.values())
    if waiting and not busy:
        if run.state is not RunState.waiting_approval:
            run.state = RunState.waiting_approval
            reasons = "; ".join(run.approval_reasons) or "stage requires approval"
            d.commands.append(_log(run, f"waiting for approval: {reasons}", "warning"))
    elif run.state is RunState.waiting_approval:
        run.state = RunState.running
    if not busy and not open_:
        _conclude(d, now)


def _needs_approval(run: Run, rec: StageRecord) -> bool:
    """Each gate needs its own approval, and an approval covers only the reasons it saw."""
    assert run.pipeline is not None
    mode = run.pipeline.stages[rec.name].approval
    if mode == "required":
        return rec.approved_by is None
    if mode == "on_request":
        return any(r not in rec.approved_reasons for r in run.approval_reasons)
    return False


def _dispatch(d: Decision, rec: StageRecord, now: datetime) -> None:
    run = _run(d)
    rec.attempt += 1
    rec.job_id = Job.make_id(run.run_id, rec.name, rec.attempt)
    rec.status = StageStatus.running
    rec.dispatched_at = now
    rec.worker = None
    rec.deliveries = 0
    rec.not_before = None
    lim = run.limits
    rec.deadline = now + _s((_timeout(run, rec) + lim.ack_wait_s) * lim.max_deliver + lim.grace_s)
    d.commands.append(DispatchJob(job=_job(run, rec)))


def _job(run: Run, rec: StageRecord) -> Job:
    assert run.pipeline is not None and rec.job_id is not None
    spec = run.pipeline.stages[rec.name]
    return Job(
        job_id=rec.job_id,
        run_id=run.run_id,
        stage=rec.name,
        kind=rec.kind,
        attempt=rec.attempt,
        repo=run.repo,
        url=run.url,
        ref=run.ref,
        sha=run.sha,
        before=run.before,
        changed_paths=run.changed_paths,
        options=dict(spec.options),
        timeout_s=spec.timeout_s,
        inputs={n: r.summary for n, r in run.stages.items() if r.status is StageStatus.succeeded},
        input_kinds={n: r.kind for n, r in run.stages.items() if r.status is StageStatus.succeeded},
        downstream_kinds=sorted({run.pipeline.stages[n].kind for n in downstream(run.pipeline.stages, rec.name)}),
        twin_required=run.pipeline.twin.required,
        deploys_without_twin=deploys_without_twin(run.pipeline.stages, rec.name),
        approved_reasons=list(rec.approved_reasons),
    )


def _conclude(d: Decision, now: datetime) -> None:
    run = _run(d)
    for rec in run.stages.values():
        if rec.on_failure and not rec.triggered and rec.status is StageStatus.pending:
            _skip(rec, "no failure to handle", now)
    failed = [r for r in run.stages.values() if not r.on_failure and r.status is StageStatus.failed]
    handlers = [r for r in run.stages.values() if r.on_failure and r.triggered]
    if not failed:
        _finish(d, RunState.succeeded, None, now)
        return
    first = failed[0]
    cause = f"stage {first.name} failed: {first.error}"
    if handlers and all(h.status is StageStatus.succeeded for h in handlers):
        _finish(d, RunState.rolled_back, f"{cause}; rolled back by {', '.join(h.name for h in handlers)}", now)
    elif handlers:
        bad = [h for h in handlers if h.status is not StageStatus.succeeded]
        detail = "; ".join(f"{h.name}: {h.error or h.status.value}" for h in bad)
        _finish(d, RunState.failed, f"{cause}; ROLLBACK FAILED, needs attention: {detail}", now)
    else:
        _finish(d, RunState.failed, cause, now)


# A superseded run is routine (a newer push took the branch: in a burst, most of them) and a
# canceled one is an operator's choice; failures and rollbacks are what an operator must see.
_FINISH_LEVEL: dict[RunState, LogLevel] = {
    RunState.succeeded: "info",
    RunState.superseded: "info",
    RunState.canceled: "warning",
}


def _finish(d: Decision, state: RunState, error: str | None, now: datetime) -> None:
    run = _run(d)
    run.state = state
    run.error = error
    run.finished_at = now
    level = _FINISH_LEVEL.get(state, "error")
    d.commands += [_log(run, f"run {state.value}" + (f": {error}" if error else ""), level), _release(run)]


def _cancel_stages(run: Run, now: datetime) -> None:
    for rec in run.stages.values():
        if not rec.status.done:
            rec.status = StageStatus.canceled
            rec.finished_at = now
            rec.deadline = None


def _skip(rec: StageRecord, reason: str, now: datetime) -> None:
    rec.status = StageStatus.skipped
    rec.skip_reason = reason
    rec.finished_at = now


# --------------------------------------------------------------------------- helpers
def _run(d: Decision) -> Run:
    assert d.run is not None
    return d.run


def _timeout(run: Run, rec: StageRecord) -> float:
    assert run.pipeline is not None
    return run.pipeline.stages[rec.name].timeout_s


def _reported(at: datetime, dispatched: datetime | None, now: datetime) -> datetime:
    """A time a worker reports (its stage's start), kept between the dispatch and now: the
    worker's clock is trusted only that far. The report itself may be late (a busy loop, a
    cluster write), so its arrival is not the stage's start."""
    if dispatched is not None and at < dispatched:
        return dispatched
    return min(at, now)


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def _release(run: Run) -> ReleaseBranch:
    return ReleaseBranch(run_id=run.run_id, repo=run.repo, ref=run.ref)


def _log(run: Run, message: str, level: LogLevel = "info", stage: str | None = None) -> EmitLog:
    return EmitLog(run_id=run.run_id, message=message, level=level, stage=stage)
