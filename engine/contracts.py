"""What a stage leaves for the stages after it, the CLI and the API: one typed summary per stage kind.

A pipeline names its stages as it likes (``build: {uses: render}``), so a sibling's result
is found by its *kind*, never by its name, through the one accessor here:

- :func:`upstream` in a stage: ``upstream(ctx.job, RenderSummary)`` is the render stage's
  summary, whatever that stage is called (None when no render stage succeeded before it);
- :func:`result_as` and :func:`results_of` in the CLI and the API: a run's stage (or every stage)
  of one kind, with its summary.

The models are what each stage kind writes into ``StageResult.summary`` (``.dump()``), field
for field and in the same order, so the JSON on the wire is what it always was. A summary on
the run may have been cut to its small fields (:mod:`engine.results`: ``result_ref`` then
names the whole result), so every field has a default and keys a model does not declare
are kept. The engine owns these contracts; the stages in ``workers/`` implement them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lintas.engine.errors import PermanentError
from lintas.engine.events import Job

if TYPE_CHECKING:
    from lintas.engine.artifacts import ArtifactStore


class StageSummary(BaseModel):
    """The base of every stage kind's summary: lenient (a summary may be cut short, or newer)."""

    model_config = ConfigDict(extra="allow")

    kind: ClassVar[str] = ""

    def dump(self) -> dict[str, Any]:
        """The summary as ``StageResult.summary`` carries it (plain JSON values)."""
        return self.model_dump(mode="json")


class RenderSummary(StageSummary):
    """The ``render`` stage: counts, the plan document and the render index, the change set."""

    kind: ClassVar[str] = "render"

    rendered: int = 0
    reused: int = 0
    targets: int = 0
    plan: str | None = None  # the plan document (artifact store) that deploy and policy read
    index: str | None = None  # the render index: target -> artifact content ids
    against: str = ""
    new: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    unchanged: int = 0


class PolicySummary(StageSummary):
    """The ``policy`` stage: decision counts and the first violations (the report has them all)."""

    kind: ClassVar[str] = "policy"

    backend: str = ""
    modules: int = 0
    repo_modules: int = 0
    deny: int = 0
    warn: int = 0
    require_approval: int = 0
    # issue 18: policies that demand a green twin before production (``require_twin``); the
    # twin stage reads these (``upstream(job, PolicySummary)``) and cannot be skipped then
    require_twin: int = 0
    twin_reasons: list[str] = Field(default_factory=list)
    # whether a twin stage runs after the policy stage (None: unknown, a local check); a
    # require_twin with none after it is a warning on the run, not a block (nothing to prove on)
    twin_follows: bool | None = None
    violations: list[dict[str, Any]] = Field(default_factory=list)  # {"decision", "policy", "message", ...}
    truncated: bool = False
    report: str | None = None
    input_sha256: str = ""
    evaluated_at: str | None = None
    labels: list[str] = Field(default_factory=list)
    duration_ms: float = 0.0


class SecscanSummary(StageSummary):
    """The ``secscan`` stage: finding counts and the top findings (never a secret value)."""

    kind: ClassVar[str] = "secscan"

    report: str | None = None
    format: str = ""
    files: int = 0
    python_files: int = 0
    skipped_files: int = 0
    blocking: int = 0
    findings: dict[str, int] = Field(default_factory=dict)  # tool -> active findings
    by_severity: dict[str, int] = Field(default_factory=dict)
    allowlisted: int = 0
    thresholds: dict[str, str] = Field(default_factory=dict)
    top: list[dict[str, Any]] = Field(default_factory=list)
    duration_ms: float = 0.0


class DeploySummary(StageSummary):
    """The ``deploy`` stage: the deployment record's name, the waves and each target's outcome."""

    kind: ClassVar[str] = "deploy"

    record: str | None = None
    waves: list[list[str]] = Field(default_factory=list)
    committed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    devices: list[dict[str, Any]] = Field(default_factory=list)  # TargetResult.brief() of each


class TwinSummary(StageSummary):
    """The ``twin`` stage (issue 18): the report, what was built, the timings and the failing checks."""

    kind: ClassVar[str] = "twin"

    report: str | None = None
    passed: bool = False
    switches: list[str] = Field(default_factory=list)  # the twin's switches
    hosts: list[str] = Field(default_factory=list)  # the twin's hypervisor hosts (the changed ones it builds)
    slice: dict[str, list[str]] = Field(default_factory=dict)  # switch or host -> why it is in the twin
    whole: bool = False  # the change touched every switch: the twin is the whole topology
    start: str = ""  # "day0" | "last_deployed": the state the twin started from
    committed: list[str] = Field(default_factory=list)  # switches the run's artifacts changed in the twin
    timings: dict[str, float] = Field(default_factory=dict)  # build_s, start_s, deploy_s, verify_s, teardown_s, total_s
    totals: dict[str, int] = Field(default_factory=dict)
    checks: list[dict[str, Any]] = Field(default_factory=list)  # failing checks: device, check, subject, ...
    out_of_scope: list[str] = Field(default_factory=list)
    # whether the change was proven on a twin; ``skipped``: why no twin was built (nothing to
    # prove, or none can be built on this machine and none was required: workers/twin/gate.py)
    proven: bool = False
    skipped: str = ""
    required: bool = False  # the pipeline's twin: {required: true} or a policy's require_twin
    required_by: list[str] = Field(default_factory=list)
    # what the change touches that no twin proves: changed hosts and switches a twin cannot build
    # (a host on a leaf of another platform, a switch of platform eos), each line saying which and why
    unproven: list[str] = Field(default_factory=list)
    hosts_unproven: list[str] = Field(default_factory=list)
    switches_unproven: list[str] = Field(default_factory=list)
    # the switches' part is proven (the twin passed, or no switch changed); ``proven`` is that and
    # nothing unproven
    switches_proven: bool = False
    # the approval reason raised (twin required, hosts unproven): deploy commits only once its
    # approval covers it (workers/deploy/twin_guard.py)
    approval: list[str] = Field(default_factory=list)


class TwinPhase(BaseModel):
    """One part of the twin stage, timed (``twin/<run>.json``'s ``phases``)."""

    name: Literal["build", "start", "deploy", "verify", "teardown"]
    seconds: float
    ok: bool
    detail: str = ""


class TwinReport(BaseModel):
    """``twin/<run>.json`` (the twin stage's report, :attr:`TwinSummary.report`): what was built,
    how long each part took, every check with expected vs observed, the verdict."""

    run_id: str
    sha: str
    twin: str = ""
    prefix: str = ""
    switches: list[str] = Field(default_factory=list)  # the switches built
    hosts: list[str] = Field(default_factory=list)  # the hypervisor hosts built
    # the change's slice (workers/twin/slice.py): switch or host -> why ("changed", "peers with leaf-02",
    # "carries VNI 10100 unchanged", "uplink leaf of host kvm-uat-01"); ``whole``: it is every switch of the model
    slice: dict[str, list[str]] = Field(default_factory=dict)
    whole: bool = False
    start: Literal["day0", "last_deployed"] = "day0"
    started_from: dict[str, str] = Field(default_factory=dict)  # switch or host -> "day0" | "deployed <commit>"
    deployed: list[str] = Field(default_factory=list)  # the plan's switches and hosts the run's artifacts went to
    committed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    phases: list[TwinPhase] = Field(default_factory=list)
    verdict: dict[str, Any] = Field(default_factory=dict)
    totals: dict[str, int] = Field(default_factory=dict)
    checks: list[dict[str, Any]] = Field(default_factory=list)
    # what the twin does not prove: verify's checks of switches and hosts not in the slice
    # ("spine-02 not in the slice: session leaf-01 ↔ spine-02 not checked; ...")
    out_of_scope: list[str] = Field(default_factory=list)
    unproven: list[str] = Field(default_factory=list)  # changed hosts and unbuildable switches, and why
    passed: bool = False
    error: str | None = None

    def timings(self) -> dict[str, float]:
        out = {f"{p.name}_s": round(p.seconds, 3) for p in self.phases}
        out["total_s"] = round(sum(p.seconds for p in self.phases), 3)
        return out

    def failing(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if c.get("passed") is False]


class ChecksSummary(StageSummary):
    """A stage that ends on checks (verify, rollback): the report, totals and the failing checks."""

    report: str | None = None
    totals: dict[str, int] = Field(default_factory=dict)
    checks: list[dict[str, Any]] = Field(default_factory=list)  # failing checks: device, check, subject, ...

    def failing(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if isinstance(c, dict) and c.get("passed") is False]


class VerifySummary(ChecksSummary):
    kind: ClassVar[str] = "verify"

    confirmed: list[str] = Field(default_factory=list)


class RollbackSummary(ChecksSummary):
    kind: ClassVar[str] = "rollback"

    restored: list[str] = Field(default_factory=list)
    attention: list[str] = Field(default_factory=list)
    devices: list[dict[str, Any]] = Field(default_factory=list)


SummaryT = TypeVar("SummaryT", bound=StageSummary)


class StageOutcome(Protocol):
    """A stage of a run as the CLI and the API see it (``StageView``, ``StageRecord``)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def summary(self) -> dict[str, Any]: ...


def summary_as(model: type[SummaryT], summary: Mapping[str, Any], *, stage: str) -> SummaryT:
    """``summary`` read as ``model``; a summary that breaks its kind's contract fails the reader."""
    try:
        return model.model_validate(dict(summary))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "(root)"
        raise PermanentError(
            f"the result of stage {stage} (kind {model.kind}) breaks its contract: {first['msg']} at {where}"
        ) from exc


def upstream(job: Job, model: type[SummaryT]) -> SummaryT | None:
    """The summary of the succeeded stage of kind ``model.kind`` this job runs after (the first
    in pipeline order when there are several); None when there is none.

    A job dispatched before jobs carried ``input_kinds`` names its inputs by stage; those are
    read as kinds (the default pipeline names every stage after its kind)."""
    for name, summary in job.inputs.items():
        if job.input_kinds.get(name, name) == model.kind:
            return summary_as(model, summary, stage=name)
    return None


async def upstreams_whole(job: Job, model: type[SummaryT], store: ArtifactStore) -> list[SummaryT]:
    """Every succeeded stage of kind ``model.kind`` this job runs after, each summary **whole**: a
    summary the worker cut to ``{result_ref, result_bytes}`` or to its small fields (an oversized
    result, :mod:`engine.results`) is read back from the stored result, so a decision carried in it
    (a policy's ``require_twin``) is never silently read as its default. An unreadable stored result
    fails the reader (PermanentError): nothing is guessed."""
    out: list[SummaryT] = []
    for name, summary in job.inputs.items():
        if job.input_kinds.get(name, name) != model.kind:
            continue
        ref = summary.get("result_ref")
        if isinstance(ref, str) and ref:
            raw = await store.get_doc(ref)
            try:
                whole = json.loads(raw or b"null")["summary"]
            except (ValueError, TypeError, KeyError) as exc:
                raise PermanentError(
                    f"the result of stage {name} (kind {model.kind}) was stored as {ref}, which cannot be read "
                    f"({'missing' if raw is None else type(exc).__name__}): its summary is not known"
                ) from None
            summary = whole
        out.append(summary_as(model, summary, stage=name))
    return out


async def upstream_whole(job: Job, model: type[SummaryT], store: ArtifactStore) -> SummaryT | None:
    """:func:`upstream`, the summary read whole (:func:`upstreams_whole`)."""
    every = await upstreams_whole(job, model, store)
    return every[0] if every else None


def result_as(stage: StageOutcome, model: type[SummaryT]) -> SummaryT | None:
    """``stage``'s summary as ``model`` when the stage is of kind ``model.kind`` and left one; else None."""
    if stage.kind != model.kind or not stage.summary:
        return None
    return summary_as(model, stage.summary, stage=stage.name)


def results_of(stages: Iterable[StageOutcome], model: type[SummaryT]) -> list[tuple[str, SummaryT]]:
    """``(stage name, summary)`` of every stage of kind ``model.kind`` that left a summary, in the order given."""
    return [(s.name, r) for s in stages if (r := result_as(s, model)) is not None]


__all__ = [
    "ChecksSummary",
    "DeploySummary",
    "PolicySummary",
    "RenderSummary",
    "RollbackSummary",
    "SecscanSummary",
    "StageOutcome",
    "StageSummary",
    "SummaryT",
    "TwinPhase",
    "TwinReport",
    "TwinSummary",
    "VerifySummary",
    "result_as",
    "results_of",
    "summary_as",
    "upstream",
    "upstream_whole",
    "upstreams_whole",
]
