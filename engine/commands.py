"""What the pure orchestrator asks the effects layer to do, and the inputs it reacts to."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lintas.engine.diagnostics import Diagnostic
from lintas.engine.events import ControlEvent, Job, JobDeadLettered, JobFinished, JobStarted, PushEvent
from lintas.engine.pipeline import PipelineSpec


class _Cmd(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Enqueue(_Cmd):
    """Ask branch admission for a slot (the run was just created)."""

    kind: Literal["enqueue"] = "enqueue"
    run_id: str
    repo: str
    ref: str
    sha: str
    seq: int = 0  # stream sequence of the push: the order of pushes, whatever the processing order


class ReleaseBranch(_Cmd):
    kind: Literal["release"] = "release"
    run_id: str
    repo: str
    ref: str


class StartRun(_Cmd):
    kind: Literal["start"] = "start"
    run_id: str


class SupersedeRun(_Cmd):
    kind: Literal["supersede"] = "supersede"
    run_id: str
    by: str


class ResolvePipeline(_Cmd):
    kind: Literal["resolve"] = "resolve"
    run_id: str


class DispatchJob(_Cmd):
    kind: Literal["dispatch"] = "dispatch"
    job: Job


class EmitLog(_Cmd):
    kind: Literal["log"] = "log"
    run_id: str
    message: str
    level: Literal["info", "warning", "error"] = "info"
    stage: str | None = None


Command = Enqueue | ReleaseBranch | StartRun | SupersedeRun | ResolvePipeline | DispatchJob | EmitLog


# --------------------------------------------------------------------------- internal inputs
class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PushReceived(_In):
    """A push taken from the EVENTS stream at stream sequence ``seq``."""

    kind: Literal["push_received"] = "push_received"
    event: PushEvent
    seq: int
    # a newer push to the same branch came in the same fetched batch (a higher stream sequence):
    # this one is created already superseded by that run, as admission would decide anyway
    superseded_by: str | None = None


class Admitted(_In):
    kind: Literal["admitted"] = "admitted"


class Superseded(_In):
    kind: Literal["superseded"] = "superseded"
    by: str


class PipelineResolved(_In):
    kind: Literal["pipeline_resolved"] = "pipeline_resolved"
    spec: PipelineSpec
    source: str
    changed_paths: list[str] | None = None
    notes: list[str] = Field(default_factory=list)  # recorded on the run (an operator deploying an older commit)


class RunRefused(_In):
    """The run's commit is stale (no longer its branch's head, or older than what is deployed):
    refused when the run starts, before any stage. ``state``: superseded when the branch moved on,
    failed when the commit is older than one already deployed."""

    kind: Literal["run_refused"] = "run_refused"
    reason: str
    state: Literal["superseded", "failed"] = "failed"
    head: str | None = None  # the branch's head when the commit is no longer it


class PipelineRejected(_In):
    kind: Literal["pipeline_rejected"] = "pipeline_rejected"
    message: str
    diagnostics: list[Diagnostic] = Field(default_factory=list)


class Tick(_In):
    """Time passed: dispatch due retries, fail stages whose worker vanished."""

    kind: Literal["tick"] = "tick"


class Recover(_In):
    """The engine restarted: re-issue whatever the stored state still needs."""

    kind: Literal["recover"] = "recover"


Input = (
    PushEvent
    | PushReceived
    | ControlEvent
    | JobStarted
    | JobFinished
    | JobDeadLettered
    | Admitted
    | Superseded
    | PipelineResolved
    | PipelineRejected
    | RunRefused
    | Tick
    | Recover
)
