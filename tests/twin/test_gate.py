"""The twin stage's gate (issue 18, workers/twin/gate.py), through the real stage on a real
nats-server and a real git repo: a plan that changes no switch ends at once without building; a
machine that cannot build a twin (the real ``find_tools`` on a PATH without the lab's programs)
skips it unproven, or fails the stage when the pipeline or a policy requires the twin. Building
a twin is tested on the lab (tests/lab/test_twin_stage.py, tests/deploy/test_twin_e2e.py)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.cli.output import print_twin
from lintas.engine.contracts import PolicySummary, RenderSummary, TwinSummary
from lintas.engine.settings import Settings
from lintas.engine.stage import StageResult
from lintas.workers.lab.cmd import find_tools
from lintas.workers.render.plan import Plan, TargetPlan
from lintas.workers.twin import gate
from lintas.workers.twin.stage import TwinStage
from tests.policy.stagekit import git_repo, harness

SWITCHES = ["leaf-01", "leaf-02", "leaf-03", "leaf-04", "spine-01", "spine-02"]
HOSTS = ["kvm-uat-01", "osc-01"]
SPINE_REASON = (
    "twin required: the change touches spine(s) spine-01, which every leaf depends on [lintas.builtin.twin_required]"
)


class Probe:
    """The real ``find_tools`` on the PATH given (an empty directory: no lab program), counting its calls."""

    def __init__(self, path: Path) -> None:
        self.path, self.calls = path, 0

    def __call__(self) -> object:
        self.calls += 1
        return find_tools(str(self.path))


def plan(changed: list[str]) -> Plan:
    targets = {
        t: TargetPlan(
            target=t, kind="host" if t in HOSTS else "device", status="changed" if t in changed else "unchanged"
        )
        for t in SWITCHES + HOSTS
    }
    return Plan(repo="infra", sha="x", against="deployed", targets=targets)


async def twin_stage(
    tmp: Path, settings: Settings, changed: list[str], *, policy: PolicySummary | None = None, pipeline: bool = False
) -> tuple[StageResult, Probe, list[str]]:
    repo, shas = git_repo(tmp / "infra")
    empty = tmp / "no-tools"
    empty.mkdir()
    probe = Probe(empty)
    async with harness(settings) as h:
        name = S.plan_doc("r-test")
        await NatsArtifactStore(h.topo.artifacts).put_doc(name, plan(changed).model_dump_json().encode())
        inputs: dict[str, dict[str, Any]] = {"render": RenderSummary(plan=name, changed=changed).dump()}
        if policy is not None:
            inputs["policy"] = policy.dump()
        ctx = h.context(repo, shas[-1], stage="twin", inputs=inputs)
        ctx.job = ctx.job.model_copy(update={"twin_required": pipeline})
        t = time.monotonic()
        result = await TwinStage(settings, probe).run(ctx)
        assert time.monotonic() - t < 10  # nothing was built
        await h.flush()
        return result, probe, [f"{x.level}: {x.message}" for x in h.logs]


async def test_a_change_to_no_switch_has_nothing_to_prove(tmp_path: Path, settings: Settings) -> None:
    result, probe, logs = await twin_stage(tmp_path, settings, ["kvm-uat-01"], pipeline=True)
    assert result.outcome == "succeeded", result.failure  # not skipped: deploy needs the twin stage
    s = TwinSummary.model_validate(result.summary)
    assert (s.skipped, s.proven, s.switches) == ("nothing to prove: the change touches no switch", False, [])
    assert s.required and s.required_by == [gate.PIPELINE_REQUIRES]  # required, but nothing to prove
    assert probe.calls == 0  # decided from the plan alone: nothing of the lab is even looked at
    assert any("nothing to prove: the change touches no switch" in line for line in logs), logs


async def test_no_lab_here_and_not_required_goes_on_unproven(tmp_path: Path, settings: Settings) -> None:
    result, probe, logs = await twin_stage(tmp_path, settings, ["leaf-01"])
    assert result.outcome == "succeeded", result.failure
    s = TwinSummary.model_validate(result.summary)
    assert probe.calls == 1 and not s.proven and not s.required and s.report is None
    assert s.skipped.startswith("no twin can be built on this machine: lintas lab cannot run; missing:")
    assert "`ip` not found on PATH" in s.skipped
    assert any(line.startswith("warning: twin skipped, the change is NOT proven") for line in logs), logs


async def test_no_lab_here_fails_when_a_policy_requires_the_twin(tmp_path: Path, settings: Settings) -> None:
    policy = PolicySummary(backend="regorus", require_twin=1, twin_reasons=[SPINE_REASON])
    result, _, logs = await twin_stage(tmp_path, settings, ["spine-01"], policy=policy)
    assert result.outcome == "failed" and result.failure is not None
    assert result.failure.message.startswith(f"twin required ({SPINE_REASON}) but no twin can be built")
    s = TwinSummary.model_validate(result.summary)
    assert s.required_by == [SPINE_REASON] and not s.proven and "not found on PATH" in s.skipped
    assert any(line.startswith("error: twin required") for line in logs), logs


async def test_no_lab_here_fails_when_the_pipeline_requires_the_twin(tmp_path: Path, settings: Settings) -> None:
    quiet = PolicySummary(backend="regorus")  # a policy stage that asked for nothing
    result, _, _ = await twin_stage(tmp_path, settings, ["leaf-02"], policy=quiet, pipeline=True)
    assert result.outcome == "failed" and result.failure is not None
    assert "twin required (the pipeline's twin: {required: true}) but no twin can be built" in result.failure.message


def test_lintas_show_says_a_skipped_twin_proved_nothing() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=100, color_system=None)
    summary = TwinSummary(skipped="no twin can be built on this machine: lintas lab cannot run; missing: `ip`")
    print_twin(console, "twin", summary, None)
    required = TwinSummary(skipped="no twin can be built here", required=True, required_by=[SPINE_REASON])
    print_twin(console, "prove", required, None)
    text = buf.getvalue()
    assert "twin (stage twin): NOT proven: no twin can be built on this machine" in text
    assert "twin (stage prove): NOT proven: no twin can be built here" in text
    assert f"required by: {SPINE_REASON}" in text
    assert "passed" not in text and "switches:" not in text
