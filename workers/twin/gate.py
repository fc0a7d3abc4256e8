"""Whether the ``twin`` stage builds a twin at all, what it cannot prove, and what it does then (issue 18).

The stage asks :func:`check` once, after reading the plan and the model and before building. The
plan's changed targets are sorted (:func:`changes`): switches a twin can build (FRR), switches it
cannot (another platform: ``eos``), hosts it can build (new or changed, their uplink leaf an FRR
switch) and hosts it cannot (:func:`host_buildable`: a leaf of another platform; a host removed from
the model, which deploy leaves alone).

- **nothing to prove**: the plan changes nothing deployable (no switch, no host new, changed or
  removed) -> the stage *succeeds* at once with the reason in its summary and log. Not
  ``skipped``: the engine skips every stage that needs a skipped one
  (:func:`engine.decide._advance`), and ``deploy`` needs ``twin``.
- **a changed switch a twin cannot build** (its platform): the twin **required** -> the stage
  fails naming it and why; not required -> the rest is proven as usual and the stage succeeds
  NOT proven (``proven: false``, the switch in ``switches_unproven`` and ``unproven``).
- **changed hosts** a twin can build are built in it with their uplink leaf and proven with the
  switches. A changed host it cannot build is never proven (``proven: false``, ``hosts_unproven``,
  ``unproven``): not required -> a warning; **required** -> the stage raises an **approval reason**
  ("twin required, but hosts kvm-uat-01 are not built in twins: approve to deploy them unproven"),
  which holds a deploy with ``approval: on_request`` until an operator approves; the deploy stage
  refuses to commit unproven hosts that no approval covered (workers/deploy/twin_guard.py). The rest
  of the change is still proven on the twin first.
- **cannot build here**: the machine lacks what a twin needs (not root, no FRR, no ``ip``...:
  :func:`workers.lab.cmd.find_tools` raises :class:`~workers.lab.cmd.PrerequisiteError`):
  - the twin is **required** (the pipeline's ``twin: {required: true}``, or a policy's
    ``require_twin`` carried in the policy stage's summary, :class:`~engine.contracts.PolicySummary`,
    read whole even when the worker cut it to a ``result_ref``)
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

from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.contracts import PolicySummary, TwinSummary, upstream_whole
from lintas.engine.stage import StageContext, StageResult
from lintas.workers.deploy import twin_guard
from lintas.workers.deploy.twin_guard import PIPELINE_REQUIRES as PIPELINE_REQUIRES  # its name here too
from lintas.workers.lab.cmd import PrerequisiteError
from lintas.workers.model.model import InfraModel
from lintas.workers.render.plan import Plan

NOTHING_TO_PROVE = "nothing to prove: the change touches no switch and no host"
REMOVED_HOST = "removed from the model: not built (deploy leaves it alone)"
MAX_NAMED = 20  # targets named in one line (then "and N more")

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


async def requirement(ctx: StageContext) -> Requirement:
    """The pipeline's option, then every policy reason (the policy stage's summary, found by kind,
    read whole: an oversized policy result cut to its ``result_ref`` still says require_twin)."""
    policy = await upstream_whole(ctx.job, PolicySummary, NatsArtifactStore(ctx.topology.artifacts))
    return Requirement(twin_guard.reasons(ctx.job, policy))


def named(names: list[str]) -> str:
    more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
    return ", ".join(names[:MAX_NAMED]) + more


@dataclass
class Changes:
    """The plan's changed targets, as a twin sees them."""

    switches: list[str] = field(default_factory=list)  # new/changed switches a twin builds, and removed ones
    unbuildable: dict[str, str] = field(default_factory=dict)  # changed switch -> why no twin builds it
    hosts: list[str] = field(default_factory=list)  # new or changed hosts a twin builds (with their leaf)
    hosts_unbuildable: dict[str, str] = field(default_factory=dict)  # changed or removed host -> why not built

    @property
    def nothing(self) -> bool:
        return not (self.switches or self.unbuildable or self.hosts or self.hosts_unbuildable)

    @property
    def buildable(self) -> bool:
        """A switch or a host a twin can build changed."""
        return bool(self.switches or self.hosts)

    def unproven(self) -> list[str]:
        """One line per target no twin proves, and why."""
        out = [f"switch {n}: {why}" for n, why in sorted(self.unbuildable.items())]
        return out + [f"host {n}: {why}" for n, why in sorted(self.hosts_unbuildable.items())]

    def not_built(self, hosts: list[str], why: str) -> None:
        """``hosts`` (of :attr:`hosts`) are not built after all: unproven, for ``why``."""
        for n in hosts:
            if n in self.hosts:
                self.hosts.remove(n)
                self.hosts_unbuildable[n] = why


def buildable(model: InfraModel, name: str) -> str | None:
    """Why the model's switch ``name`` cannot be built in a twin; None when it can."""
    d = model.devices.get(name)
    if d is not None and d.platform != "frr":
        return f"platform {d.platform} cannot be built in a twin (FRR switches only)"
    return None


def host_buildable(model: InfraModel, name: str) -> str | None:
    """Why the model's host ``name`` cannot be built in a twin (its uplink leaf cannot); None when it can."""
    h = model.hosts.get(name)
    if h is None:
        return "not a host of the model"
    leaf = model.devices.get(h.uplink.leaf)
    if leaf is None:
        return f"its uplink leaf {h.uplink.leaf} is not a switch of the model"
    why = buildable(model, leaf.name)
    return None if why is None else f"its uplink leaf {leaf.name}: {why}"


def changes(plan: Plan, model: InfraModel) -> Changes:
    """The plan's new, changed or removed targets: switches (a target of unknown kind is a switch
    or a host when the model names it one) and hosts, each sorted into those a twin can build and
    those it cannot."""
    out = Changes()
    for n, tp in sorted(plan.targets.items()):
        if tp.status == "unchanged":
            continue
        if tp.kind == "device" or (tp.kind is None and n in model.devices):
            why = None if tp.status == "removed" else buildable(model, n)
            if why is None:
                out.switches.append(n)
            else:
                out.unbuildable[n] = why
        elif tp.kind == "host" or (tp.kind is None and n in model.hosts):
            why = REMOVED_HOST if tp.status == "removed" else host_buildable(model, n)
            if why is None:
                out.hosts.append(n)
            else:
                out.hosts_unbuildable[n] = why
    return out


def switches_changed(plan: Plan, model: InfraModel) -> list[str]:
    """The plan's switches a twin can build that are new, changed or removed (non-FRR switches are
    not buildable: :func:`changes`)."""
    return changes(plan, model).switches


@dataclass
class Gate:
    """What the stage goes on with when it builds a twin: who requires it, and what it cannot prove."""

    need: Requirement
    changed: Changes

    def approval(self) -> list[str]:
        """The approval reason a required twin raises for the hosts it cannot prove."""
        if not (self.need.required and self.changed.hosts_unbuildable):
            return []
        return [
            f"twin required, but hosts {named(sorted(self.changed.hosts_unbuildable))} are not built in twins: "
            "approve to deploy them unproven"
        ]

    def fields(self, switches_proven: bool) -> dict[str, Any]:
        """The summary's requirement, what went unproven, and ``proven``."""
        unproven = self.changed.unproven()
        return self.need.fields() | {
            "unproven": unproven,
            "hosts_unproven": sorted(self.changed.hosts_unbuildable),
            "switches_unproven": sorted(self.changed.unbuildable),
            "switches_proven": switches_proven and not self.changed.unbuildable,
            "proven": switches_proven and not unproven,
            "approval": self.approval() if switches_proven else [],
        }

    def cannot_build(self) -> str | None:
        """The failure when the twin is required and a changed switch cannot be built; else None."""
        if not (self.need.required and self.changed.unbuildable):
            return None
        lines = "; ".join(f"{n}: {why}" for n, why in sorted(self.changed.unbuildable.items()))
        return f"twin required ({'; '.join(self.need.why)}) but changed switch(es) cannot be built in a twin: {lines}"

    async def say(self, ctx: StageContext) -> None:
        """The run's log: what no twin proves, and the approval it raises."""
        for line in self.changed.unproven():
            await ctx.log.warning(f"NOT proven by the twin: {line}")
        for reason in self.approval():
            await ctx.log.warning(reason)


def unproven(reason: str, g: Gate) -> StageResult:
    """The stage's result when no twin is built (nothing to build, or none can be, and none is
    required): succeeded, NOT proven; ``switches_proven`` when no switch a twin builds changed."""
    fields = g.fields(not g.changed.switches)
    fields["proven"] = False  # nothing was proven, even when there was nothing to prove
    summary = TwinSummary(passed=False, skipped=reason, **fields).dump()
    return StageResult.ok(summary, approval_reasons=g.approval() if not g.changed.switches else [])


async def check(ctx: StageContext, plan: Plan, model: InfraModel, probe: Probe) -> StageResult | Gate:
    """The stage's result when no twin is to be built (see the module); else the gate to record
    with the twin's own result."""
    g = Gate(await requirement(ctx), changes(plan, model))
    if g.changed.nothing:
        await ctx.log.info(f"twin: {NOTHING_TO_PROVE}; no twin built")
        return unproven(NOTHING_TO_PROVE, g)
    failure = g.cannot_build()
    if failure is not None:
        await ctx.log.error(failure)
        return StageResult.failed(failure, summary=TwinSummary(passed=False, **g.fields(False)).dump())
    await g.say(ctx)
    if not g.changed.buildable:
        reason = "no switch or host a twin can build changed: " + "; ".join(g.changed.unproven())
        await ctx.log.info(f"twin: {reason}; no twin built")
        return unproven(reason, g)
    try:
        await asyncio.to_thread(probe)
    except PrerequisiteError as exc:
        reason = f"no twin can be built on this machine: {exc}"
        g.changed.not_built(list(g.changed.hosts), reason)
        if g.need.required:
            await ctx.log.error(f"twin required ({'; '.join(g.need.why)}) but {reason}")
            return StageResult.failed(
                f"twin required ({'; '.join(g.need.why)}) but {reason}",
                summary=TwinSummary(passed=False, skipped=reason, **g.fields(False)).dump(),
            )
        await ctx.log.warning(f"twin skipped, the change is NOT proven: {reason}")
        return StageResult.ok(TwinSummary(passed=False, skipped=reason, **g.fields(False)).dump())
    if g.need.required:
        await ctx.log.info(f"the twin may not be skipped, required by: {'; '.join(g.need.why)}")
    return g


def recorded(result: StageResult, g: Gate) -> StageResult:
    """The twin's own result, with whether it was required (and by whom), what it did not prove
    and ``proven`` in its summary; a passed twin raises the approval for hosts it cannot prove."""
    ok = result.outcome == "succeeded"
    result.summary.update(g.fields(ok))
    if ok:
        result.approval_reasons = [*result.approval_reasons, *g.approval()]
    return result
