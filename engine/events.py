"""Typed, versioned envelopes for everything that travels on NATS.

The engine parses its own messages strictly (``extra="forbid"``). Every envelope has a
``kind`` discriminator and a ``schema_version``; its ``event_id`` doubles as the
``Nats-Msg-Id`` so JetStream drops duplicates.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from lintas.engine.diagnostics import Diagnostic

SCHEMA_VERSION = 1
ZERO_SHA = "0" * 40


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    event_id: str
    occurred_at: datetime


# --------------------------------------------------------------------------- ingress
class PushEvent(Envelope):
    """A branch moved: from a git hook, a webhook, a manual trigger or the reconciler."""

    kind: Literal["push"] = "push"
    repo: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=1)  # where to fetch: trusted, server-side configuration
    ref: str = Field(min_length=1, max_length=250)
    before: str | None = None
    sha: str = Field(pattern=r"^[0-9a-f]{40}$")
    author: str = ""
    message: str = ""
    source: Literal["hook", "webhook", "manual", "reconcile", "retry"] = "hook"
    retry_of: str | None = None

    @staticmethod
    def dedup_key(repo: str, ref: str, sha: str) -> str:
        """The one identity of a push: the Nats-Msg-Id and the run id derive from it."""
        return f"{repo}@{ref}@{sha}"

    @property
    def run_id(self) -> str:
        return run_id_for(self.event_id)


def run_id_for(event_id: str) -> str:
    return "r-" + hashlib.sha256(event_id.encode()).hexdigest()[:16]


def manual_event_id() -> str:
    return f"manual:{uuid.uuid4().hex}"


Action = Literal["approve", "reject", "cancel", "retry"]


class ControlEvent(Envelope):
    """An operator's decision about a run."""

    kind: Literal["control"] = "control"
    run_id: str
    action: Action
    actor: str = "unknown"
    comment: str = ""


IngressEvent = Annotated[PushEvent | ControlEvent, Field(discriminator="kind")]
ingress_adapter: TypeAdapter[PushEvent | ControlEvent] = TypeAdapter(IngressEvent)


# --------------------------------------------------------------------------- jobs
class Job(BaseModel):
    """One attempt of one stage of one run. Its id is ``run/stage/attempt``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    job_id: str
    run_id: str
    stage: str
    kind: str
    attempt: int
    repo: str
    url: str
    ref: str
    sha: str
    before: str | None = None
    changed_paths: list[str] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float
    inputs: dict[str, dict[str, Any]] = Field(default_factory=dict)  # upstream summaries
    input_kinds: dict[str, str] = Field(default_factory=dict)  # upstream stage -> its kind (engine.contracts)
    # Kinds of the stages that run after this one when it succeeds (need it, directly or not);
    # None from an engine older than this field. Deploy refuses to commit when no verify follows.
    downstream_kinds: list[str] | None = None
    # The pipeline's ``twin: {required: true}`` (issue 18): the twin stage may not be skipped.
    twin_required: bool = False
    # The deploy stages after this one that no twin stage after it precedes (engine.pipeline.
    # deploys_without_twin): a policy's require_twin cannot stop those. None: an older engine.
    deploys_without_twin: list[str] | None = None
    # The approval reasons this stage's approval covered (a gate: ``approval: on_request|required``).
    approved_reasons: list[str] = Field(default_factory=list)

    @staticmethod
    def make_id(run_id: str, stage: str, attempt: int) -> str:
        return f"{run_id}/{stage}/{attempt}"


class StageFailure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    message: str
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    retryable: bool = False
    dead_lettered: bool = False


class JobStarted(Envelope):
    kind: Literal["job_started"] = "job_started"
    job_id: str
    run_id: str
    stage: str
    attempt: int
    worker: str
    delivery: int = 1


class JobFinished(Envelope):
    kind: Literal["job_finished"] = "job_finished"
    job_id: str
    run_id: str
    stage: str
    attempt: int
    worker: str
    outcome: Literal["succeeded", "failed"]
    failure: StageFailure | None = None
    summary: dict[str, Any] = Field(default_factory=dict)
    approval_reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    duration_s: float = 0.0


class JobDeadLettered(Envelope):
    """A job JetStream gave up on (max_deliver) without a worker reporting it."""

    kind: Literal["job_dead_lettered"] = "job_dead_lettered"
    job_id: str
    run_id: str
    stage: str
    attempt: int
    reason: str


ResultEvent = Annotated[JobStarted | JobFinished | JobDeadLettered, Field(discriminator="kind")]
result_adapter: TypeAdapter[JobStarted | JobFinished | JobDeadLettered] = TypeAdapter(ResultEvent)


class LogLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    stage: str | None = None
    ts: datetime
    level: Literal["debug", "info", "warning", "error"] = "info"
    message: str
    worker: str | None = None
