"""The built-in ``twin_required`` policy (issue 18) through the real policy stage and regorus:
a change touching a spine carries ``require_twin`` in the policy stage's summary (what the twin
stage reads); a leaf-only change does not; a pipeline without a twin stage is told so on the run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lintas.engine.contracts import PolicySummary
from lintas.engine.settings import Settings
from lintas.workers.model import InfraModel
from lintas.workers.policy.config import PolicySettings
from lintas.workers.policy.input import build_input
from lintas.workers.policy.regorus_backend import RegorusEngine
from lintas.workers.policy.report import reasons
from lintas.workers.policy.stage import PolicyStage
from tests.policy.conftest import FIXED_META
from tests.policy.stagekit import git_repo, harness
from tests.policy.test_stage import render_summary, store_plan


async def _policy(
    tmp: Path, settings: Settings, changed: list[str], downstream: list[str], unguarded: list[str] | None = None
) -> tuple[PolicySummary, list[str]]:
    repo, shas = git_repo(tmp / "infra")
    async with harness(settings) as h:
        await store_plan(h, changed)
        ctx = h.context(repo, shas[-1], stage="policy", inputs={"render": render_summary(changed)})
        update: dict[str, object] = {"downstream_kinds": downstream, "deploys_without_twin": unguarded}
        ctx.job = ctx.job.model_copy(update=update)
        result = await PolicyStage(settings, PolicySettings()).run(ctx)
    assert result.outcome == "succeeded", result.failure
    return PolicySummary.model_validate(result.summary), result.warnings


async def test_a_spine_change_requires_a_twin(tmp_path: Path, settings: Settings) -> None:
    s, warnings = await _policy(tmp_path, settings, ["leaf-01", "spine-02"], ["deploy", "twin", "verify"])
    assert s.backend == "regorus" and s.require_twin == 1
    assert s.twin_reasons == [
        "twin required: the change touches spine(s) spine-02, which every leaf depends on "
        "[lintas.builtin.twin_required]"
    ]
    assert {"decision": "require_twin", "policy": "lintas.builtin.twin_required"}.items() <= next(
        v for v in s.violations if v["decision"] == "require_twin"
    ).items()
    assert not any("unproven" in w for w in warnings)  # a twin stage follows: it will enforce it
    assert s.twin_follows is True  # what deploy reads: the requirement binds it (workers/deploy/twin_guard.py)


async def test_a_leaf_change_requires_no_twin(tmp_path: Path, settings: Settings) -> None:
    s, warnings = await _policy(tmp_path, settings, ["leaf-01"], ["deploy", "twin", "verify"])
    assert (s.require_twin, s.twin_reasons) == (0, [])
    assert not any(v["decision"] == "require_twin" for v in s.violations)


async def test_no_twin_stage_is_a_warning_on_the_run(tmp_path: Path, settings: Settings) -> None:
    s, warnings = await _policy(tmp_path, settings, ["spine-01"], ["deploy", "verify"])
    assert s.require_twin == 1
    assert [w for w in warnings if "unproven" in w] == [
        "twin required: the change touches spine(s) spine-01, which every leaf depends on "
        "[lintas.builtin.twin_required]; but this pipeline has no twin stage after the policy stage: the change "
        "goes to production unproven"
    ]
    assert s.twin_follows is False


async def test_a_deploy_that_does_not_wait_for_the_twin_is_named(tmp_path: Path, settings: Settings) -> None:
    """A twin stage follows, but one deploy runs beside it: the run is told that deploy refuses."""
    s, warnings = await _policy(tmp_path, settings, ["spine-01"], ["deploy", "twin", "verify"], ["deploy"])
    assert s.require_twin == 1 and s.twin_follows is True
    assert [w for w in warnings if "twin stage" in w] == [
        "twin required: the change touches spine(s) spine-01, which every leaf depends on "
        "[lintas.builtin.twin_required]; but deploy stage(s) deploy do not wait for the twin stage: they refuse "
        "to deploy the change unproven"
    ]


def test_a_removed_spine_requires_a_twin(template_model: InfraModel, library: dict[str, str]) -> None:
    """Removing a spine changes every leaf: it counts, its role read from the model before the change."""
    after = replace(template_model, devices={n: d for n, d in template_model.devices.items() if n != "spine-02"})
    leaves = sorted(n for n, d in after.devices.items() if d.is_leaf)
    change = {"against": "deployed", "changed": leaves, "removed": ["spine-02"]}
    doc = build_input(after, plan_summary=change, meta=FIXED_META, previous=template_model)
    assert {"name": "spine-02", "status": "removed", "kind": "device", "role": "spine"} in doc["change"]["targets"]
    decision = RegorusEngine(isolated=False).evaluate(library, doc, {})
    assert reasons(decision.require_twin) == [
        "twin required: the change touches spine(s) spine-02, which every leaf depends on "
        "[lintas.builtin.twin_required]"
    ]
    unknown = build_input(after, plan_summary=change, meta=FIXED_META)  # no model before: role unknown
    assert {"name": "spine-02", "status": "removed", "kind": "unknown", "role": None} in unknown["change"]["targets"]
