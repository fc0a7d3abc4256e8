"""The secscan stage on real repos and a real nats-server: it fails the run on a planted key and a
shell=True script, keeps a SARIF report, and never lets the key out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lintas.engine.settings import Settings
from lintas.workers.secscan.stage import SecscanStage, report_doc_name
from tests.policy.stagekit import git_repo, harness

KEY = "AKIA" + "Q7WXKP2M4RZT6YB3"  # an AWS-style access key id, assembled so this file is not bait
SCRIPT = 'import subprocess\n\n\ndef restart(unit):\n    subprocess.call("systemctl restart " + unit, shell=True)\n'
PLANTED = {
    "scripts/restart.py": SCRIPT,
    "inventory/cloud.yaml": f"aws:\n  region: eu-central-1\n  access_key_id: {KEY}\n",
}
ALLOW = """version: 1
allow:
  - path: inventory/cloud.yaml
    rule: aws-access-key-id
    reason: AWS's documented example key in a how-to
  - path: inventory/cloud.yaml
    rule: secret-assignment
    line: 3
    reason: an entry that matches nothing is harmless
  - path: scripts/**
    rule: B602
    reason: the unit name comes from our own list, not from users
"""


def _levels(sarif: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    return sorted(
        (
            run["tool"]["driver"]["name"],
            r["ruleId"],
            r["level"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
        )
        for run in sarif["runs"]
        for r in run["results"]
    )


async def test_planted_key_and_shell_true_fail_and_the_key_never_leaks(tmp_path: Path, settings: Settings) -> None:
    repo, shas = git_repo(tmp_path / "infra", PLANTED, message="cloud inventory and a restart script")
    async with harness(settings) as h:
        result = await SecscanStage(settings).run(h.context(repo, shas[-1], stage="secscan"))
        await h.flush()
        sarif_raw = await h.doc(report_doc_name("r-test"))
    assert result.outcome == "failed" and result.failure is not None
    where = {(d.file, d.line, d.message.split("]")[0] + "]") for d in result.failure.diagnostics}
    assert ("scripts/restart.py", 5, "[bandit B602]") in where
    assert ("inventory/cloud.yaml", 3, "[secrets aws-access-key-id]") in where
    assert result.summary["blocking"] == 2 and result.summary["report"] == report_doc_name("r-test")
    assert sarif_raw is not None
    sarif = json.loads(sarif_raw)
    assert sarif["version"] == "2.1.0" and [r["tool"]["driver"]["name"] for r in sarif["runs"]] == [
        "bandit",
        "lintas-secrets",
    ]
    assert ("bandit", "B602", "error", 5) in _levels(sarif)
    assert ("lintas-secrets", "aws-access-key-id", "error", 3) in _levels(sarif)
    everything = [sarif_raw.decode(), result.model_dump_json(), *(line.model_dump_json() for line in h.logs)]
    assert h.logs and all(KEY not in text for text in everything)
    assert any("inventory/cloud.yaml:3" in line.message for line in h.logs)


async def test_allowlisted_findings_are_reported_as_suppressed(tmp_path: Path, settings: Settings) -> None:
    repo, shas = git_repo(tmp_path / "infra", {**PLANTED, ".lintas/secscan-allowlist.yaml": ALLOW})
    async with harness(settings) as h:
        result = await SecscanStage(settings).run(h.context(repo, shas[-1], stage="secscan"))
        sarif = json.loads(await h.doc(report_doc_name("r-test")) or b"{}")
    assert result.outcome == "succeeded", result.failure
    assert result.summary["allowlisted"] == 2 and result.summary["blocking"] == 0
    suppressed = [r for run in sarif["runs"] for r in run["results"] if r.get("suppressions")]
    assert {r["ruleId"] for r in suppressed} == {"B602", "aws-access-key-id"}
    assert all(r["level"] == "note" for r in suppressed)


async def test_broken_allowlist_fails_with_file_and_line(tmp_path: Path, settings: Settings) -> None:
    bad = ALLOW.replace("    reason: an entry", "    reasn: an entry")
    repo, shas = git_repo(tmp_path / "infra", {**PLANTED, ".lintas/secscan-allowlist.yaml": bad})
    async with harness(settings) as h:
        result = await SecscanStage(settings).run(h.context(repo, shas[-1], stage="secscan"))
    assert result.outcome == "failed" and result.failure is not None
    lines = {(d.file, d.line) for d in result.failure.diagnostics}
    assert (".lintas/secscan-allowlist.yaml", 9) in lines, result.failure.diagnostics


async def test_bad_options_name_the_pipeline_key(tmp_path: Path, settings: Settings) -> None:
    repo, shas = git_repo(tmp_path / "infra")
    async with harness(settings) as h:
        ctx = h.context(repo, shas[-1], stage="secscan", options={"severity": "critical"})
        result = await SecscanStage(settings).run(ctx)
    assert result.outcome == "failed" and result.failure is not None
    d = result.failure.diagnostics[0]
    assert d.file == ".lintas/pipeline.yaml" and d.path == "stages.secscan.with.severity"


async def test_the_template_repo_passes_with_an_empty_report(tmp_path: Path, settings: Settings) -> None:
    repo, shas = git_repo(tmp_path / "infra")
    async with harness(settings) as h:
        result = await SecscanStage(settings).run(h.context(repo, shas[-1], stage="secscan"))
        sarif = json.loads(await h.doc(report_doc_name("r-test")) or b"{}")
    assert result.outcome == "succeeded" and result.warnings == []
    assert result.summary["blocking"] == 0 and result.summary["files"] >= 10 and result.summary["top"] == []
    assert all(run["results"] == [] and run["invocations"][0]["executionSuccessful"] for run in sarif["runs"])


def test_run_local(tmp_path: Path, settings: Settings) -> None:
    repo, _ = git_repo(tmp_path / "infra", PLANTED)
    result = SecscanStage(settings).run_local(repo)
    assert result.outcome == "failed" and KEY not in result.model_dump_json()
