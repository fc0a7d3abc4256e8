"""Stage results by kind (engine/contracts.py): a pipeline may rename its stages, and every
reader (a stage, the CLI, the API) still finds its sibling's result through one typed accessor."""

from __future__ import annotations

from typing import Any

import pytest

from lintas.engine.contracts import (
    DeploySummary,
    PolicySummary,
    RenderSummary,
    SecscanSummary,
    VerifySummary,
    results_of,
    upstream,
)
from lintas.engine.errors import PermanentError
from lintas.engine.events import Job
from lintas.engine.views import StageView
from tests.engine.test_decide import apply, dispatched, jobs, ok, resolved

RENDERED = {
    "rendered": 2,
    "reused": 4,
    "targets": 6,
    "plan": "plan/r-1.json",
    "index": "render/infra/aaa.json",
    "against": "deployed",
    "new": ["leaf-05"],
    "changed": ["leaf-01"],
    "removed": [],
    "unchanged": 4,
}


def _job(inputs: dict[str, dict[str, Any]], kinds: dict[str, str] | None = None) -> Job:
    return Job(
        job_id="r-1/ship/1",
        run_id="r-1",
        stage="ship",
        kind="deploy",
        attempt=1,
        repo="infra",
        url="file:///x",
        ref="refs/heads/main",
        sha="a" * 40,
        timeout_s=60,
        inputs=inputs,
        input_kinds=kinds or {},
    )


def test_a_renamed_stage_is_found_by_its_kind() -> None:
    job = _job({"check": {"files": 3}, "build": RENDERED}, {"check": "validate", "build": "render"})
    render = upstream(job, RenderSummary)
    assert render is not None and render.plan == "plan/r-1.json" and render.changed == ["leaf-01"]
    assert upstream(job, PolicySummary) is None
    assert _job({"render": RENDERED}, {"render": "custom"}).input_kinds["render"] == "custom"
    assert upstream(_job({"render": RENDERED}, {"render": "custom"}), RenderSummary) is None  # the name is no kind


def test_a_job_from_before_input_kinds_reads_names_as_kinds() -> None:
    render = upstream(_job({"render": RENDERED}), RenderSummary)
    assert render is not None and render.index == "render/infra/aaa.json"


def test_a_cut_summary_reads_with_defaults_and_keeps_unknown_keys() -> None:
    cut = {"plan": "plan/r-1.json", "result_bytes": 300_000, "result_omitted": ["new"], "result_ref": "result/r-1"}
    render = upstream(_job({"build": cut}, {"build": "render"}), RenderSummary)
    assert render is not None and render.new == [] and render.plan == "plan/r-1.json"
    assert render.model_extra == {"result_bytes": 300_000, "result_omitted": ["new"], "result_ref": "result/r-1"}


def test_a_summary_breaking_its_contract_fails_the_reader_with_the_field() -> None:
    with pytest.raises(PermanentError, match=r"stage build \(kind render\).*plan"):
        upstream(_job({"build": {"plan": ["not", "a", "name"]}}, {"build": "render"}), RenderSummary)


def test_dump_keeps_the_wire_shape_field_for_field_and_in_order() -> None:
    assert list(RenderSummary.model_validate(RENDERED).dump()) == list(RENDERED)
    assert RenderSummary.model_validate(RENDERED).dump() == RENDERED
    deploy = DeploySummary(record="deploy/r-1.json", waves=[["spine-01"]], committed=["spine-01"])
    assert list(deploy.dump()) == ["record", "waves", "committed", "unchanged", "failed", "devices"]
    assert list(SecscanSummary().dump())[:2] == ["report", "format"]


def test_the_cli_and_api_read_results_by_kind() -> None:
    def view(name: str, kind: str, summary: dict[str, Any]) -> StageView:
        return StageView(
            name=name,
            kind=kind,
            state="failed",
            on_failure=False,
            worker=None,
            attempts=1,
            deliveries=1,
            started_at=None,
            finished_at=None,
            duration_s=None,
            error=None,
            skip_reason=None,
            diagnostics=[],
            summary=summary,
        )

    check = {"device": "leaf-01", "check": "bgp", "subject": "10.0.0.1", "passed": False}
    stages = [
        view("build", "render", RENDERED),
        view("prove", "verify", {"checks": [check, {"passed": True}]}),
        view("smoke", "verify", {"checks": []}),
    ]
    assert [(n, s.plan) for n, s in results_of(stages, RenderSummary)] == [("build", "plan/r-1.json")]
    assert [(n, s.failing()) for n, s in results_of(stages, VerifySummary)] == [("prove", [check]), ("smoke", [])]


def test_the_engine_tells_a_job_the_kind_of_each_upstream_stage() -> None:
    run, d = resolved("""\
        version: 1
        name: renamed
        stages:
          build: {uses: render}
          ship: {needs: [build], uses: deploy}
        """)
    assert dispatched(d) == ["build"]
    run, d = apply(run, ok("build", summary=RENDERED))
    (job,) = jobs(d)
    assert job.stage == "ship" and job.input_kinds == {"build": "render"}
    render = upstream(job, RenderSummary)
    assert render is not None and render.plan == "plan/r-1.json"


def test_lintas_show_finds_gates_and_checks_by_kind_whatever_the_stage_names() -> None:
    import io

    from rich.console import Console

    from lintas.engine.cli.output import print_gates, print_run
    from lintas.engine.views import RunDetail
    from tests.engine.test_cli_output import _summary

    def view(name: str, kind: str, summary: dict[str, Any]) -> StageView:
        return StageView(
            name=name,
            kind=kind,
            state="failed",
            on_failure=False,
            worker=None,
            attempts=1,
            deliveries=1,
            started_at=None,
            finished_at=None,
            duration_s=None,
            error=None,
            skip_reason=None,
            diagnostics=[],
            summary=summary,
        )

    gate = PolicySummary(
        backend="regorus",
        deny=1,
        violations=[{"decision": "deny", "policy": "lintas.asn", "message": "duplicate ASN 65001"}],
    ).dump()
    check = {
        "device": "leaf-01",
        "check": "bgp",
        "subject": "10.0.0.1",
        "passed": False,
        "expected": "Established",
        "observed": "Idle",
    }
    stages = [
        view("gate", "policy", gate),
        view("errored", "policy", {}),  # an error leaves no summary
        view("prove", "verify", {"checks": [check]}),
        view("lookalike", "custom", {"violations": [], "checks": [check]}),
    ]  # not a policy nor a verify
    run = RunDetail(
        **_summary(1).model_dump(),
        pipeline="renamed",
        pipeline_source="repo",
        changed_paths=None,
        approval_reasons=[],
        approved_by=None,
        approvals=[],
        warnings=[],
        superseded_by=None,
        retry_of=None,
        diagnostics=[],
        stages=stages,
    )
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200, color_system=None)
    print_run(console, run, as_json=False)
    print_gates(console, run)
    text = buf.getvalue()
    assert "failing checks (prove):" in text and "failing checks (lookalike)" not in text
    assert "policy (gate, regorus): 1 deny, 0 approval, 0 twin, 0 warn" in text
    assert "deny lintas.asn: duplicate ASN 65001" in text
    assert "(errored" not in text and "(lookalike" not in text
