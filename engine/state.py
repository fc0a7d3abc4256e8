"""The run document: what the engine knows about one pipeline run.

Stored in KV as JSON and updated only by compare-and-set. Everything the decision
function needs is in here, so a restarted engine rebuilds from KV alone.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lintas.engine.diagnostics import Diagnostic
from lintas.engine.pipeline import PipelineSpec


class RunState(StrEnum):
    queued = "queued"
    running = "running"
    waiting_approval = "waiting_approval"
    succeeded = "succeeded"
    failed = "failed"
    rolled_back = "rolled_back"
    canceled = "canceled"
    superseded = "superseded"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_RUN_STATES


TERMINAL_RUN_STATES = frozenset(
    {RunState.succeeded, RunState.failed, RunState.rolled_back, RunState.canceled, RunState.superseded}
)


class StageStatus(StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"
    canceled = "canceled"

    @property
    def done(self) -> bool:
        return self not in (StageStatus.pending, StageStatus.running)


class Limits(BaseModel):
    """Delivery limits frozen into the run at creation, so decisions are reproducible."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_deliver: int = 5
    ack_wait_s: float = 30.0
    grace_s: float = 30.0


class StageRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    status: StageStatus = StageStatus.pending
    on_failure: bool = False  # a failure handler (rollback): runs only when triggered
    triggered: bool = False  # set when a stage it handles failed
    attempt: int = 0  # attempts dispatched so far
    job_id: str | None = None
    worker: str | None = None
    deliveries: int = 0
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    not_before: datetime | None = None  # retry backoff
    deadline: datetime | None = None  # no result by then: the worker vanished
    error: str | None = None
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    summary: dict[str, Any] = Field(default_factory=dict)
    skip_reason: str | None = None
    awaiting_approval: bool = False  # ready, but its gate has not been approved
    approved_by: str | None = None
    approved_reasons: list[str] = Field(default_factory=list)  # the reasons that approval covered

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: str
    at: datetime
    stages: list[str]
    reasons: list[str]
    comment: str = ""


class Run(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    run_id: str
    event_id: str
    repo: str
    url: str
    ref: str
    sha: str
    before: str | None = None
    author: str = ""
    message: str = ""
    source: str = "hook"
    retry_of: str | None = None
    event_seq: int = 0  # stream sequence of the push event (push order)
    state: RunState = RunState.queued
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    limits: Limits = Field(default_factory=Limits)
    pipeline: PipelineSpec | None = None
    pipeline_source: str | None = None
    changed_paths: list[str] | None = None
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    error: str | None = None
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    approval_reasons: list[str] = Field(default_factory=list)
    approved_by: str | None = None  # the latest approver
    approvals: list[Approval] = Field(default_factory=list)  # audit trail, one entry per approval
    warnings: list[str] = Field(default_factory=list)
    superseded_by: str | None = None
    canceled_by: str | None = None

    @property
    def duration_s(self) -> float | None:
        end = self.finished_at or None
        if self.created_at and end:
            return (end - self.created_at).total_seconds()
        return None

    @property
    def short_sha(self) -> str:
        return self.sha[:8]


class QueuedRun(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    sha: str
    seq: int = 0


class BranchQueue(BaseModel):
    """Admission for one (repo, ref): one active run, and at most one queued (the newest)."""

    model_config = ConfigDict(extra="forbid")

    repo: str
    ref: str
    active: str | None = None
    active_seq: int = 0
    queued: list[QueuedRun] = Field(default_factory=list)
    latest_seq: int = 0  # high-water mark of admitted pushes: an older push never runs after it
    latest_run: str | None = None
