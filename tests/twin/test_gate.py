"""The twin stage's gate (issue 18, workers/twin/gate.py), through the real stage on a real
nats-server and a real git repo: a plan that changes no switch ends at once without building; a
machine that cannot build a twin (the real ``find_tools`` on a PATH without the lab's programs)
skips it unproven, or fails the stage when the pipeline or a policy requires the twin. Building
a twin is tested on the lab (tests/lab/test_twin_stage.py, tests/deploy/test_twin_e2e.py)."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from rich.console import Console

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.cli.output import print_twin
from lintas.engine.contracts import PolicySummary, RenderSummary, TwinReport, TwinSummary
from lintas.engine.errors import PermanentError
from lintas.engine.events import JobFinished
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext, StageResult
from lintas.workers.lab.cmd import find_tools
from lintas.workers.render.plan import Plan, TargetPlan
from lintas.workers.twin import gate
from lintas.workers.twin.stage import TwinStage
from tests.policy.stagekit import git_repo, harness
from tests.render import as_eos, model_of, template_texts

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
    tmp: Path,
    settings: Settings,
    changed: list[str],
    *,
    policy: PolicySummary | dict[str, Any] | None = None,
    pipeline: bool = False,
    files: dict[str, str] | None = None,
    docs: dict[str, bytes] | None = None,
) -> tuple[StageResult, Probe, list[str]]:
    """The real twin stage on ``changed`` (the template's model, ``files`` committed over it);
    ``policy``: the policy stage's summary on the job (a dict: as the run holds it, e.g. cut to a
    ``result_ref``); ``docs``: documents in the run's object store first."""
    repo, shas = git_repo(tmp / "infra", files)
    empty = tmp / "no-tools"
    empty.mkdir()
    probe = Probe(empty)
    async with harness(settings) as h:
        store = NatsArtifactStore(h.topo.artifacts)
        name = S.plan_doc("r-test")
        await store.put_doc(name, plan(changed).model_dump_json().encode())
        for doc, raw in (docs or {}).items():
            await store.put_doc(doc, raw)
        inputs: dict[str, dict[str, Any]] = {"render": RenderSummary(plan=name, changed=changed).dump()}
        if policy is not None:
            inputs["policy"] = policy if isinstance(policy, dict) else policy.dump()
        ctx = h.context(repo, shas[-1], stage="twin", inputs=inputs)
        ctx.job = ctx.job.model_copy(update={"twin_required": pipeline})
        t = time.monotonic()
        result = await TwinStage(settings, probe).run(ctx)
        assert time.monotonic() - t < 10  # nothing was built
        await h.flush()
        return result, probe, [f"{x.level}: {x.message}" for x in h.logs]


async def test_a_change_to_nothing_deployable_has_nothing_to_prove(tmp_path: Path, settings: Settings) -> None:
    result, probe, logs = await twin_stage(tmp_path, settings, [], pipeline=True)
    assert result.outcome == "succeeded", result.failure  # not skipped: deploy needs the twin stage
    s = TwinSummary.model_validate(result.summary)
    assert (s.skipped, s.proven, s.switches, s.unproven) == (gate.NOTHING_TO_PROVE, False, [], [])
    assert s.required and s.required_by == [gate.PIPELINE_REQUIRES]  # required, but nothing to prove
    assert result.approval_reasons == []
    assert probe.calls == 0  # decided from the plan alone: nothing of the lab is even looked at
    assert any(gate.NOTHING_TO_PROVE in line for line in logs), logs


async def test_a_host_change_is_built_in_a_twin_and_unproven_without_a_lab(tmp_path: Path, settings: Settings) -> None:
    """A changed host is built in a twin (with its leaf): a change of hosts only is never 'nothing to
    prove', and with no lab here (not required) it goes on unproven, the host named."""
    result, probe, logs = await twin_stage(tmp_path, settings, ["kvm-uat-01"])
    assert result.outcome == "succeeded", result.failure
    s = TwinSummary.model_validate(result.summary)
    assert (s.proven, s.hosts_unproven) == (False, ["kvm-uat-01"])
    assert probe.calls == 1  # a twin was to be built
    [line] = s.unproven
    assert line.startswith("host kvm-uat-01: no twin can be built on this machine: ")
    assert s.skipped and s.skipped != gate.NOTHING_TO_PROVE
    assert result.approval_reasons == [] and s.approval == []  # not required: said, not held
    assert any(x.startswith("warning: twin skipped, the change is NOT proven") for x in logs), logs


EOS_LEAF = {"fabric/devices.yaml": as_eos(template_texts(), {"leaf-01"})["fabric/devices.yaml"]}
ON_EOS = "its uplink leaf leaf-01: platform eos cannot be built in a twin (FRR switches only)"


async def test_a_required_twin_holds_hosts_it_cannot_build_for_approval(tmp_path: Path, settings: Settings) -> None:
    """kvm-uat-01's leaf is an EOS switch: no twin builds the host, a required twin asks for an approval."""
    result, probe, logs = await twin_stage(tmp_path, settings, ["kvm-uat-01"], pipeline=True, files=EOS_LEAF)
    assert result.outcome == "succeeded", result.failure
    reason = "twin required, but hosts kvm-uat-01 are not built in twins: approve to deploy them unproven"
    assert result.approval_reasons == [reason]  # deploy (approval: on_request) waits for an operator
    s = TwinSummary.model_validate(result.summary)
    assert (s.proven, s.required, s.approval, s.hosts_unproven) == (False, True, [reason], ["kvm-uat-01"])
    assert s.unproven == [f"host kvm-uat-01: {ON_EOS}"] and probe.calls == 0
    assert f"warning: {reason}" in logs, logs


async def test_a_required_twin_with_a_buildable_host_and_no_lab_fails(tmp_path: Path, settings: Settings) -> None:
    result, probe, _ = await twin_stage(tmp_path, settings, ["kvm-uat-01"], pipeline=True)
    assert result.outcome == "failed" and result.failure is not None
    assert "no twin can be built on this machine" in result.failure.message and probe.calls == 1
    s = TwinSummary.model_validate(result.summary)
    assert not s.proven and s.hosts_unproven == ["kvm-uat-01"] and s.approval == []


async def test_hosts_and_switches_changed_without_a_lab_are_not_proven(tmp_path: Path, settings: Settings) -> None:
    result, probe, _ = await twin_stage(tmp_path, settings, ["kvm-uat-01", "osc-01", "spine-01"])
    assert result.outcome == "succeeded", result.failure  # no lab here, not required: unproven
    s = TwinSummary.model_validate(result.summary)
    assert probe.calls == 1 and not s.proven and not s.switches_proven
    assert s.hosts_unproven == ["kvm-uat-01", "osc-01"]
    assert [x.split(":")[0] for x in s.unproven] == ["host kvm-uat-01", "host osc-01"]


def test_the_approval_names_every_host_no_twin_builds_and_proven_needs_them_all() -> None:
    """The gate's record of a twin that passed: proven only when every changed host was built in it."""
    need = gate.Requirement([gate.PIPELINE_REQUIRES])
    cannot = {"kvm-uat-01": ON_EOS, "osc-01": gate.REMOVED_HOST}
    g = gate.Gate(need, gate.Changes(switches=["spine-01"], hosts_unbuildable=cannot))
    result = gate.recorded(StageResult.ok({"passed": True}), g)
    s = TwinSummary.model_validate(result.summary)
    assert (s.proven, s.switches_proven, s.passed) == (False, True, True)
    assert result.approval_reasons == [
        "twin required, but hosts kvm-uat-01, osc-01 are not built in twins: approve to deploy them unproven"
    ]
    failed = gate.recorded(StageResult.failed("twin: 1 check(s) failed"), g)
    assert failed.approval_reasons == [] and not failed.summary["proven"] and failed.summary["approval"] == []
    clean = gate.recorded(StageResult.ok({"passed": True}), gate.Gate(need, gate.Changes(switches=["spine-01"])))
    assert clean.summary["proven"] and clean.approval_reasons == [] and clean.summary["unproven"] == []
    # hosts the twin built and proved: proven, nothing to approve
    built = gate.Gate(need, gate.Changes(switches=["leaf-01"], hosts=["kvm-uat-01"]))
    ok = gate.recorded(StageResult.ok({"passed": True}), built)
    assert ok.summary["proven"] and ok.approval_reasons == [] and ok.summary["hosts_unproven"] == []
    # ... unless the twin did not build one after all (the stage's _hosts_not_built)
    built.changed.not_built(["kvm-uat-01"], "not built by the twin")
    late = gate.recorded(StageResult.ok({"passed": True}), built)
    assert not late.summary["proven"] and late.summary["hosts_unproven"] == ["kvm-uat-01"]
    assert late.approval_reasons == [
        "twin required, but hosts kvm-uat-01 are not built in twins: approve to deploy them unproven"
    ]


def test_hosts_sorted_into_buildable_and_not() -> None:
    model = model_of(as_eos(template_texts(), {"leaf-01"}))
    p = plan(["kvm-uat-01", "osc-01"])
    ch = gate.changes(p, model)
    assert ch.hosts == ["osc-01"] and ch.hosts_unbuildable == {"kvm-uat-01": ON_EOS}
    assert gate.host_buildable(model, "osc-01") is None and gate.host_buildable(model, "nope") is not None
    p.targets["osc-01"].status = "removed"
    assert gate.changes(p, model).hosts_unbuildable["osc-01"] == gate.REMOVED_HOST


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
    hosts = "twin required, but hosts kvm-uat-01 are not built in twins: approve to deploy them unproven"
    passed = TwinSummary(
        passed=True,
        switches_proven=True,
        report="twin/r.json",
        unproven=["host(s) kvm-uat-01: hosts are not built in twins yet"],
        approval=[hosts],
    )
    print_twin(console, "twin", passed, None)
    text = buf.getvalue()
    assert "twin (stage twin, twin/r.json): passed" in text
    assert "NOT proven: host(s) kvm-uat-01: hosts are not built in twins yet" in text
    assert f"approval: {hosts}" in text


EOS_SPINE = {"fabric/devices.yaml": as_eos(template_texts(), {"spine-02"})["fabric/devices.yaml"]}


def test_a_switch_of_another_platform_is_not_buildable() -> None:
    model = model_of(as_eos(template_texts(), {"spine-02"}))
    ch = gate.changes(plan(["spine-02", "leaf-01", "kvm-uat-01"]), model)
    assert ch.switches == ["leaf-01"] and ch.hosts == ["kvm-uat-01"]
    assert ch.unbuildable == {"spine-02": "platform eos cannot be built in a twin (FRR switches only)"}
    assert gate.switches_changed(plan(["spine-02"]), model) == []


async def test_a_changed_switch_no_twin_can_build_fails_a_required_twin(tmp_path: Path, settings: Settings) -> None:
    result, probe, logs = await twin_stage(tmp_path, settings, ["spine-02"], pipeline=True, files=EOS_SPINE)
    assert result.outcome == "failed" and result.failure is not None
    assert result.failure.message == (
        "twin required (the pipeline's twin: {required: true}) but changed switch(es) cannot be built in a twin: "
        "spine-02: platform eos cannot be built in a twin (FRR switches only)"
    )
    s = TwinSummary.model_validate(result.summary)
    assert s.switches_unproven == ["spine-02"] and not s.proven and probe.calls == 0
    assert any(line.startswith("error: twin required") and "spine-02" in line for line in logs), logs


async def test_a_changed_switch_no_twin_can_build_is_unproven_when_not_required(
    tmp_path: Path, settings: Settings
) -> None:
    result, probe, logs = await twin_stage(tmp_path, settings, ["spine-02"], files=EOS_SPINE)
    assert result.outcome == "succeeded", result.failure
    s = TwinSummary.model_validate(result.summary)
    assert (s.proven, s.switches_proven, s.switches_unproven) == (False, False, ["spine-02"])
    assert s.unproven == ["switch spine-02: platform eos cannot be built in a twin (FRR switches only)"]
    assert probe.calls == 0 and s.switches == []  # the only changed switch cannot be built: no twin at all
    assert any("NOT proven by the twin: switch spine-02: platform eos" in line for line in logs), logs


def cut_policy(summary: PolicySummary, ref: str) -> tuple[dict[str, Any], bytes]:
    """A policy result the worker stored whole (engine/worker.py ``_bounded``): the run keeps
    ``{result_ref, result_bytes}`` only; the object store has the JobFinished."""
    finished = JobFinished(
        event_id="e",
        occurred_at=datetime.now(UTC),
        job_id="r-test/policy/1",
        run_id="r-test",
        stage="policy",
        attempt=1,
        worker="w",
        outcome="succeeded",
        summary=summary.dump(),
    )
    raw = finished.model_dump_json().encode()
    return {"result_ref": ref, "result_bytes": len(raw)}, raw


async def test_a_policys_require_twin_survives_a_result_cut_to_its_ref(tmp_path: Path, settings: Settings) -> None:
    ref = S.result_doc("r-test", "policy", 1)
    inline, raw = cut_policy(PolicySummary(backend="regorus", require_twin=1, twin_reasons=[SPINE_REASON]), ref)
    assert PolicySummary.model_validate(inline).require_twin == 0  # what the inline summary alone says
    result, _, _ = await twin_stage(tmp_path, settings, ["spine-01"], policy=inline, docs={ref: raw})
    assert result.outcome == "failed" and result.failure is not None  # required: no lab here fails it
    assert result.failure.message.startswith(f"twin required ({SPINE_REASON}) but no twin can be built")


async def test_an_unreadable_stored_policy_result_is_not_read_as_no_requirement(
    tmp_path: Path, settings: Settings
) -> None:
    inline = {"result_ref": S.result_doc("r-test", "policy", 1), "result_bytes": 300_000}
    with pytest.raises(PermanentError, match="cannot be read .missing.: its summary is not known"):
        await twin_stage(tmp_path, settings, ["spine-01"], policy=inline)


async def test_a_changed_switch_the_twin_did_not_build_is_caught_after_the_build() -> None:
    """The check after twin_up (TwinStage._not_built): a changed switch of the slice missing from
    what was built, for whatever reason, fails a required twin naming it; the report says so."""
    model = model_of(template_texts())
    need = gate.Requirement([gate.PIPELINE_REQUIRES])
    g = gate.Gate(need, gate.Changes(switches=["leaf-01", "spine-01"]))
    report = TwinReport(run_id="r", sha="x")
    ctx = cast(StageContext, None)  # a required twin fails before logging anything
    failure = await TwinStage._not_built(ctx, model, ["leaf-01", "leaf-02", "spine-02"], report, g)
    assert failure == (
        "twin required (the pipeline's twin: {required: true}) but changed switch(es) cannot be built in a twin: "
        "spine-01: not built by the twin (the lab plan left it out)"
    )
    assert report.unproven == ["switch spine-01: not built by the twin (the lab plan left it out)"]
    assert g.changed.switches == ["leaf-01"] and not g.fields(True)["proven"]
    ok = gate.Gate(need, gate.Changes(switches=["leaf-01"]))
    assert await TwinStage._not_built(ctx, model, ["leaf-01", "spine-01"], TwinReport(run_id="r", sha="x"), ok) is None
