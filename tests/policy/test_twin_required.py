"""The built-in ``twin_required`` policy (issue 18) through the real policy stage and regorus:
a change touching a spine carries ``require_twin`` in the policy stage's summary (what the twin
stage reads); a leaf-only change does not; a pipeline without a twin stage is told so on the run."""

from __future__ import annotations

from pathlib import Path

from lintas.engine.contracts import PolicySummary
from lintas.engine.settings import Settings
from lintas.workers.policy.config import PolicySettings
from lintas.workers.policy.stage import PolicyStage
from tests.policy.stagekit import git_repo, harness
from tests.policy.test_stage import render_summary, store_plan


async def _policy(
    tmp: Path, settings: Settings, changed: list[str], downstream: list[str]
) -> tuple[PolicySummary, list[str]]:
    repo, shas = git_repo(tmp / "infra")
    async with harness(settings) as h:
        await store_plan(h, changed)
        ctx = h.context(repo, shas[-1], stage="policy", inputs={"render": render_summary(changed)})
        ctx.job = ctx.job.model_copy(update={"downstream_kinds": downstream})
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


async def test_a_leaf_change_requires_no_twin(tmp_path: Path, settings: Settings) -> None:
    s, warnings = await _policy(tmp_path, settings, ["leaf-01"], ["deploy", "twin", "verify"])
    assert (s.require_twin, s.twin_reasons) == (0, [])
    assert not any(v["decision"] == "require_twin" for v in s.violations)


async def test_no_twin_stage_is_a_warning_on_the_run(tmp_path: Path, settings: Settings) -> None:
    s, warnings = await _policy(tmp_path, settings, ["spine-01"], ["deploy", "verify"])
    assert s.require_twin == 1
    assert [w for w in warnings if "unproven" in w] == [
        "twin required: the change touches spine(s) spine-01, which every leaf depends on "
        "[lintas.builtin.twin_required]; but this pipeline has no twin stage: the change goes to production unproven"
    ]
