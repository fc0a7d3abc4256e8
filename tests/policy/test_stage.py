"""The policy stage on real repos and a real nats-server: decisions, reports, failing closed."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.settings import Settings
from lintas.workers.policy.config import PolicySettings
from lintas.workers.policy.report import report_doc_name
from lintas.workers.policy.stage import PolicyStage
from lintas.workers.render.plan import Plan, TargetPlan
from tests.policy.stagekit import Harness, git_repo, harness

PAYMENTS = """package lintas.local

deny contains {"msg": msg, "object": {"kind": "instance", "name": name}} if {
\tsome name, inst in input.instances
\tinst.project == "uat-payments"
\tinput.hosts[inst.host].kind != "openstack"
\tmsg := sprintf("%s: payments run on OpenStack hosts only", [name])
}
"""
ALL_TARGETS = ["kvm-uat-01", "leaf-01", "leaf-02", "leaf-03", "leaf-04", "osc-01", "spine-01", "spine-02"]


def render_summary(changed: list[str]) -> dict[str, object]:
    return {
        "rendered": len(changed),
        "reused": 0,
        "targets": 8,
        "plan": "plan/x.json",
        "index": "render/x.json",
        "against": "deployed",
        "new": [],
        "changed": changed,
        "removed": [],
        "unchanged": 8 - len(changed),
    }


async def store_plan(h: Harness, changed: list[str], name: str = "plan/x.json") -> None:
    """The plan document the render stage stores: what policy reads (as deploy does)."""
    targets = {t: TargetPlan(target=t, status="changed" if t in changed else "unchanged") for t in ALL_TARGETS}
    plan = Plan(repo="infra", sha="x", against="deployed", targets=targets)
    await NatsArtifactStore(h.topo.artifacts).put_doc(name, plan.model_dump_json().encode())


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_change_touching_both_spines_asks_for_approval(tmp_path: Path, settings: Settings) -> None:
    repo, shas = git_repo(tmp_path / "infra")
    stage = PolicyStage(settings, PolicySettings())
    async with harness(settings) as h:
        await store_plan(h, ALL_TARGETS)
        # the inline result may leave the lists out (too large): the plan document is the change
        summary = {k: v for k, v in render_summary(ALL_TARGETS).items() if k not in ("changed", "new", "removed")}
        ctx = h.context(repo, shas[-1], stage="policy", inputs={"render": summary})
        result = await stage.run(ctx)
        await h.flush()
        assert result.outcome == "succeeded", result.failure
        assert any("spine-01, spine-02" in r for r in result.approval_reasons), result.approval_reasons
        assert any("4 of 4 leaves" in r for r in result.approval_reasons)
        s = result.summary
        assert (s["backend"], s["deny"], s["require_approval"]) == ("regorus", 0, 2)
        assert s["report"] == report_doc_name("r-test") and len(json.dumps(s)) < 4000
        report = json.loads(await h.doc(s["report"]) or b"{}")
        assert report["decision"]["require_approval"][0]["policy"] == "lintas.builtin.blast_radius"
        stored_input = json.loads(await h.blob(report["input"]) or b"{}")
        assert stored_input["change"]["changed"] == ALL_TARGETS and stored_input["meta"]["sha"] == shas[-1]
        assert any("approval" in line.message for line in h.logs), [x.message for x in h.logs]


async def test_a_missing_plan_document_fails_closed(tmp_path: Path, settings: Settings) -> None:
    repo, shas = git_repo(tmp_path / "infra")
    async with harness(settings) as h:
        ctx = h.context(repo, shas[-1], stage="policy", inputs={"render": render_summary(ALL_TARGETS)})
        result = await PolicyStage(settings, PolicySettings()).run(ctx)
        await h.flush()
    assert result.outcome == "failed" and result.failure is not None
    assert "fail closed" in result.failure.message and "plan/x.json" in result.failure.message


async def test_repo_policy_denies_with_the_model_location(tmp_path: Path, settings: Settings) -> None:
    repo, shas = git_repo(tmp_path / "infra", {"policies/payments.rego": PAYMENTS}, message="payments policy")
    stage = PolicyStage(settings, PolicySettings())
    async with harness(settings) as h:
        result = await stage.run(h.context(repo, shas[-1], stage="policy", before=shas[0]))
    assert result.outcome == "failed" and result.failure is not None
    where = {(d.file, d.line) for d in result.failure.diagnostics}
    assert ("hosts/instances.yaml", 13) in where and ("hosts/instances.yaml", 25) in where, where
    assert "[lintas.local]" in result.failure.message
    assert result.summary["repo_modules"] >= 1 and result.summary["deny"] == 2


async def test_syntax_error_in_a_repo_policy_fails_with_file_and_line(tmp_path: Path, settings: Settings) -> None:
    broken = PAYMENTS.replace("[name])\n}", "[name]\n}")
    repo, shas = git_repo(tmp_path / "infra", {"policies/payments.rego": broken})
    async with harness(settings) as h:
        result = await PolicyStage(settings, PolicySettings()).run(h.context(repo, shas[-1], stage="policy"))
        await h.flush()
    assert result.outcome == "failed" and result.failure is not None
    d = result.failure.diagnostics[0]
    assert d.file == "policies/payments.rego" and d.line in (7, 8), d
    assert f"policies/payments.rego:{d.line}" in result.failure.message
    assert any("policies/payments.rego:" in line.message for line in h.logs)


async def test_unreachable_opa_fails_the_stage(tmp_path: Path, settings: Settings) -> None:
    repo, shas = git_repo(tmp_path / "infra")
    config = PolicySettings(opa_url=f"http://127.0.0.1:{closed_port()}", opa_timeout_s=1)
    async with harness(settings) as h:
        result = await PolicyStage(settings, config).run(h.context(repo, shas[-1], stage="policy"))
    assert result.outcome == "failed" and result.failure is not None
    assert "fail closed" in result.failure.message and "unreachable" in result.failure.message
    assert result.approval_reasons == [] and result.summary == {}


async def test_the_same_push_through_opa(tmp_path: Path, settings: Settings, opa_url: str) -> None:
    repo, shas = git_repo(tmp_path / "infra", {"policies/payments.rego": PAYMENTS})
    async with harness(settings) as h:
        ctx = h.context(repo, shas[-1], stage="policy", before=shas[0])
        a = await PolicyStage(settings, PolicySettings()).run(ctx)
        b = await PolicyStage(settings, PolicySettings(opa_url=opa_url)).run(ctx)
    assert a.failure is not None and b.failure is not None
    assert a.failure.diagnostics == b.failure.diagnostics
    assert (a.summary["backend"], b.summary["backend"]) == ("regorus", "opa")


def test_run_local_with_and_without_a_baseline(tmp_path: Path, settings: Settings) -> None:
    fabric = (Path(__file__).resolve().parents[2] / "gitops-repo-template" / "fabric" / "fabric.yaml").read_text()
    repo, shas = git_repo(tmp_path / "infra", {"fabric/fabric.yaml": fabric.replace("bfd: true", "bfd: false")})
    stage = PolicyStage(settings, PolicySettings())
    unknown = stage.run_local(repo)
    assert unknown.outcome == "succeeded" and unknown.approval_reasons == []
    assert any("blast radius not checked" in w for w in unknown.warnings)
    known = stage.run_local(repo, against=shas[0])
    assert known.outcome == "succeeded" and known.warnings == []
    assert any("spine-01, spine-02" in r for r in known.approval_reasons)
