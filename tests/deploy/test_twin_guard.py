"""Deploy's backstop for a required twin (issue 18, workers/deploy/twin_guard.py), on a real
nats-server without a lab: the deploy stage refuses, before touching anything, a change the
pipeline or a policy requires proven on a twin when no twin stage before it proved it; it goes on
when a twin proved it, had nothing to prove, or proved the switches and the hosts it could not
prove were approved; a policy result cut to its ``result_ref`` is read whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.contracts import PolicySummary, TwinSummary
from lintas.engine.settings import Settings
from lintas.workers.deploy import twin_guard
from lintas.workers.deploy.deploy import DeployStage
from tests.policy.stagekit import git_repo, harness
from tests.twin.test_gate import cut_policy

SPINE = (
    "twin required: the change touches spine(s) spine-01, which every leaf depends on [lintas.builtin.twin_required]"
)
HOSTS = "twin required, but hosts kvm-uat-01 are not built in twins: approve to deploy them unproven"
PROVEN = TwinSummary(passed=True, proven=True, switches_proven=True, required=True)
NOTHING = TwinSummary(skipped="nothing to prove: the change touches no switch and no host", switches_proven=True)
HOSTS_ONLY = TwinSummary(
    switches_proven=True,
    hosts_unproven=["kvm-uat-01"],
    unproven=["host(s) kvm-uat-01: hosts are not built in twins yet"],
    approval=[HOSTS],
    required=True,
)
SKIPPED = TwinSummary(skipped="no twin can be built on this machine: lintas lab cannot run")


async def refusal(
    settings: Settings,
    *,
    pipeline: bool = False,
    policy: PolicySummary | dict[str, Any] | None = None,
    twin: TwinSummary | None = None,
    approved: list[str] | None = None,
    docs: dict[str, bytes] | None = None,
) -> str | None:
    async with harness(settings) as h:
        store = NatsArtifactStore(h.topo.artifacts)
        for name, raw in (docs or {}).items():
            await store.put_doc(name, raw)
        inputs: dict[str, dict[str, Any]] = {}
        if policy is not None:
            inputs["policy"] = policy if isinstance(policy, dict) else policy.dump()
        if twin is not None:
            inputs["prove"] = twin.dump()
        job = h.context(Path("/nonexistent"), "a" * 40, stage="ship", inputs=inputs).job.model_copy(
            update={
                "kind": "deploy",
                "input_kinds": {"policy": "policy", "prove": "twin"},
                "twin_required": pipeline,
                "approved_reasons": approved or [],
                "downstream_kinds": ["verify"],
            }
        )
        return await twin_guard.refusal(job, store)


async def test_a_required_twin_that_did_not_run_or_prove_stops_deploy(settings: Settings) -> None:
    why = await refusal(settings, pipeline=True)
    assert why is not None and why.startswith("twin required (the pipeline's twin: {required: true}) but no twin")
    assert "Nothing was deployed" in why
    why = await refusal(settings, pipeline=True, twin=SKIPPED)
    assert why is not None and "its twin did not prove the change (no twin can be built on this machine" in why
    assert await refusal(settings, pipeline=True, twin=PROVEN) is None
    assert await refusal(settings, pipeline=True, twin=NOTHING) is None  # nothing deployable changed
    assert await refusal(settings, twin=SKIPPED) is None  # not required: the run says NOT proven, deploy goes on


async def test_unproven_hosts_go_only_with_an_approval_that_covers_them(settings: Settings) -> None:
    why = await refusal(settings, pipeline=True, twin=HOSTS_ONLY)  # deploy with approval: none
    assert why is not None and f"raised an approval this stage's approval does not cover: {HOSTS}" in why
    assert await refusal(settings, pipeline=True, twin=HOSTS_ONLY, approved=["something else"]) is not None
    assert await refusal(settings, pipeline=True, twin=HOSTS_ONLY, approved=["something else", HOSTS]) is None
    failed_switches = HOSTS_ONLY.model_copy(update={"switches_proven": False})  # never happens: a failed twin fails
    assert await refusal(settings, pipeline=True, twin=failed_switches, approved=[HOSTS]) is not None


async def test_a_policys_require_twin_binds_deploy_when_a_twin_stage_follows_the_policy(settings: Settings) -> None:
    asks = PolicySummary(require_twin=1, twin_reasons=[SPINE], twin_follows=True)
    why = await refusal(settings, policy=asks)  # the twin runs beside deploy: not in its inputs
    assert why is not None and why.startswith(f"twin required ({SPINE}) but no twin stage ran before it")
    assert await refusal(settings, policy=asks, twin=PROVEN) is None
    # no twin stage after the policy stage at all: the policy stage warned the run; nothing to prove it on
    assert await refusal(settings, policy=asks.model_copy(update={"twin_follows": False})) is None
    assert await refusal(settings, policy=PolicySummary(twin_follows=True)) is None  # asked for nothing


async def test_a_policy_result_cut_to_its_ref_still_binds_deploy(settings: Settings) -> None:
    ref = S.result_doc("r-test", "policy", 1)
    inline, raw = cut_policy(PolicySummary(require_twin=1, twin_reasons=[SPINE], twin_follows=True), ref)
    why = await refusal(settings, policy=inline, docs={ref: raw})
    assert why is not None and why.startswith(f"twin required ({SPINE})")


async def test_the_deploy_stage_refuses_before_reading_the_plan(tmp_path: Path, settings: Settings) -> None:
    repo, shas = git_repo(tmp_path / "infra")
    async with harness(settings) as h:
        ctx = h.context(repo, shas[-1], stage="deploy", inputs={"prove": SKIPPED.dump()})
        ctx.job = ctx.job.model_copy(
            update={"input_kinds": {"prove": "twin"}, "twin_required": True, "downstream_kinds": ["verify"]}
        )
        result = await DeployStage(settings).run(ctx)
        await h.flush()
        logs = [f"{x.level}: {x.message}" for x in h.logs]
        assert await h.doc(S.deploy_record_doc("r-test")) is None  # no rollout record: nothing started
    assert result.outcome == "failed" and result.failure is not None
    assert result.failure.message.startswith("twin required (the pipeline's twin: {required: true}) but its twin")
    assert "refuses to deploy an unproven change" in result.failure.message
    assert any(line.startswith("error: twin required") for line in logs), logs
