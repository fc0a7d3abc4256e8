"""Deploy's backstop for a required twin (issue 18): no commit of a change that had to be proven
on a twin and was not.

The twin is **required** when the pipeline says ``twin: {required: true}`` (``Job.twin_required``)
or a policy's ``require_twin`` (the policy stage's summary, read whole) and a twin stage runs after
that policy stage (``PolicySummary.twin_follows``; with no twin stage at all the policy stage has
said on the run that the change goes to production unproven). Then deploy commits only when a
twin stage it ran after says ``proven: true`` (or had nothing to prove), or when that twin proved the switches and every
approval reason it raised (hosts no twin builds) is covered by this stage's approval
(``Job.approved_reasons``). The pipeline checks (engine/pipeline.py) and the twin stage
(workers/twin/gate.py) are meant to make this never refuse; it is here for what they miss
(a pipeline from an older engine, a summary read short).
"""

from __future__ import annotations

from lintas.engine.artifacts import ArtifactStore
from lintas.engine.contracts import PolicySummary, TwinSummary, upstream_whole, upstreams_whole
from lintas.engine.events import Job

PIPELINE_REQUIRES = "the pipeline's twin: {required: true}"


def reasons(job: Job, policy: PolicySummary | None) -> list[str]:
    """Who requires the twin: the pipeline's option, then the policy's ``require_twin`` (empty: nobody)."""
    why = [PIPELINE_REQUIRES] if job.twin_required else []
    if policy is not None and policy.require_twin:
        why += policy.twin_reasons or [f"{policy.require_twin} policy decision(s) require_twin"]
    return why


async def required_by(job: Job, store: ArtifactStore) -> list[str]:
    """Who requires the twin for this job's change: a policy's requirement binds deploy only when a
    twin stage runs after the policy stage (else the run was warned that it goes unproven)."""
    policy = await upstream_whole(job, PolicySummary, store)
    return reasons(job, policy if policy is not None and policy.twin_follows is not False else None)


def accepted(twin: TwinSummary, approved: list[str]) -> bool:
    """The twin proved the change, or had nothing to prove (no switch, no host changed), or proved
    its switches and every approval reason it raised (hosts) is approved."""
    if twin.proven or (twin.switches_proven and not twin.unproven):
        return True
    return twin.switches_proven and bool(twin.approval) and set(twin.approval) <= set(approved)


async def refusal(job: Job, store: ArtifactStore) -> str | None:
    """Why deploy may not commit (nothing was deployed), or None."""
    why = await required_by(job, store)
    if not why:
        return None
    twins = await upstreams_whole(job, TwinSummary, store)
    if any(accepted(t, job.approved_reasons) for t in twins):
        return None
    if not twins:
        seen = "no twin stage ran before it"
    else:
        t = twins[0]
        unapproved = [r for r in t.approval if r not in job.approved_reasons]
        seen = (
            "its twin raised an approval this stage's approval does not cover: " + "; ".join(unapproved)
            if t.switches_proven and unapproved
            else "its twin did not prove the change"
            + (f" ({t.skipped})" if t.skipped else "")
            + (f"; not proven: {'; '.join(t.unproven)}" if t.unproven else "")
        )
    return (
        f"twin required ({'; '.join(why)}) but {seen}: stage {job.stage} refuses to deploy an unproven change "
        "(needs: a twin stage before it; approval: on_request to approve hosts). Nothing was deployed."
    )
