"""Whether the ``twin`` stage builds a twin at all, and what it does when it cannot (issue 18).

The stage asks :func:`check` once, after reading the plan and the model and before building:

- **nothing to prove**: the plan changes no switch (no device target new, changed or removed;
  twins hold switches only) -> the stage *succeeds* at once with the reason in its summary and
  log. Not ``skipped``: the engine skips every stage that needs a skipped one
  (:func:`engine.decide._advance`), and ``deploy`` needs ``twin``; a run that changes only
  hosts or documentation must still deploy.
- **cannot build here**: the machine lacks what a twin needs (not root, no FRR, no ``ip``...:
  :func:`workers.lab.cmd.find_tools` raises :class:`~workers.lab.cmd.PrerequisiteError`):
  - the twin is **required** (the pipeline's ``twin: {required: true}``, or a policy's
    ``require_twin`` carried in the policy stage's summary, :class:`~engine.contracts.PolicySummary`)
    -> the stage **fails**, naming what requires it and what is missing; production is not touched;
  - not required -> it succeeds **unproven** (``proven: false``, ``skipped: <reason>`` in its
    summary, a warning in its log, and ``lintas show`` says the change was NOT proven); the run goes on.
- otherwise the twin is built; whether it was required is recorded in the summary either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lintas.engine.contracts import PolicySummary, TwinSummary, upstream
from lintas.engine.events import Job
from lintas.engine.stage import StageContext, StageResult
from lintas.workers.lab.cmd import PrerequisiteError
from lintas.workers.model.model import InfraModel
from lintas.workers.render.plan import Plan

NOTHING_TO_PROVE = "nothing to prove: the change touches no switch"
PIPELINE_REQUIRES = "the pipeline's twin: {required: true}"

Probe = Callable[[], object]  # find_tools: raises PrerequisiteError when no twin can be built here


@dataclass(frozen=True)
class Requirement:
    """Whether the twin may be skipped, and who says it may not."""

    why: list[str] = field(default_factory=list)

    @property
    def required(self) -> bool:
        return bool(self.why)

    def fields(self) -> dict[str, Any]:
        """The summary's ``required`` and ``required_by``."""
        return {"required": self.required, "required_by": list(self.why)}


def requirement(job: Job) -> Requirement:
    """The pipeline's option, then every policy reason (the policy stage's summary, found by kind)."""
    why = [PIPELINE_REQUIRES] if job.twin_required else []
    policy = upstream(job, PolicySummary)
    if policy is not None and policy.require_twin:
        why += policy.twin_reasons or [f"{policy.require_twin} policy decision(s) require_twin"]
    return Requirement(why)


def switches_changed(plan: Plan, model: InfraModel) -> list[str]:
    """The plan's switches that are new, changed or removed (a target of unknown kind is a switch
    when the model names it one)."""
    return sorted(
        n
        for n, tp in plan.targets.items()
        if tp.status != "unchanged" and (tp.kind == "device" or (tp.kind is None and n in model.devices))
    )


def unproven(reason: str, need: Requirement) -> StageResult:
    """The stage's result when no twin is built and none is required: succeeded, NOT proven."""
    summary = TwinSummary(passed=False, proven=False, skipped=reason, **need.fields()).dump()
    return StageResult.ok(summary)


async def check(ctx: StageContext, plan: Plan, model: InfraModel, probe: Probe) -> StageResult | Requirement:
    """The stage's result when no twin is to be built (see the module); else the requirement to
    record with the twin's own result."""
    need = requirement(ctx.job)
    if not switches_changed(plan, model):
        await ctx.log.info(f"twin: {NOTHING_TO_PROVE}; no twin built")
        return unproven(NOTHING_TO_PROVE, need)
    try:
        await asyncio.to_thread(probe)
    except PrerequisiteError as exc:
        reason = f"no twin can be built on this machine: {exc}"
        if need.required:
            await ctx.log.error(f"twin required ({'; '.join(need.why)}) but {reason}")
            return StageResult.failed(
                f"twin required ({'; '.join(need.why)}) but {reason}",
                summary=TwinSummary(passed=False, proven=False, skipped=reason, **need.fields()).dump(),
            )
        await ctx.log.warning(f"twin skipped, the change is NOT proven: {reason}")
        return unproven(reason, need)
    if need.required:
        await ctx.log.info(f"the twin may not be skipped, required by: {'; '.join(need.why)}")
    return need


def recorded(result: StageResult, need: Requirement) -> StageResult:
    """The twin's own result, with whether it was required (and by whom) in its summary."""
    result.summary.update(need.fields(), proven=result.outcome == "succeeded")
    return result
