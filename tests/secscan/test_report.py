"""The SARIF 2.1.0 log, the compact summary and the allowlist rules."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from lintas.workers.secscan.allowlist import AllowEntry, Allowlist
from lintas.workers.secscan.findings import Finding
from lintas.workers.secscan.scan import scan_repo

KEY = "AKIA" + "Q7WXKP2M4RZT6YB3"


def finding(rule: str = "aws-access-key-id", file: str = "a/b.yaml", line: int = 3) -> Finding:
    return Finding(
        tool="secrets",
        rule=rule,
        name=rule,
        file=file,
        line=line,
        severity="high",
        confidence="high",
        message="x",
        fingerprint="0123456789abcdef",
        blocking=True,
    )


def test_sarif_log_is_well_formed_and_holds_no_snippets(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "a.py").write_text(
        'import subprocess\nsubprocess.call("ls " + d, shell=True)\nK = "' + KEY + '"\n'
    )
    scan = scan_repo(tmp_path)
    sarif = scan.sarif()
    text = json.dumps(sarif)
    assert KEY not in text and "snippet" not in text and "contextRegion" not in text
    assert sarif["$schema"].endswith("sarif-2.1.0.json") and sarif["version"] == "2.1.0"
    for run in sarif["runs"]:
        rules = run["tool"]["driver"]["rules"]
        assert len({r["id"] for r in rules}) == len(rules)
        for r in run["results"]:
            assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
            loc = r["locations"][0]["physicalLocation"]
            assert loc["artifactLocation"]["uriBaseId"] == "REPO" and not loc["artifactLocation"]["uri"].startswith("/")
            assert r["level"] in ("error", "warning", "note") and len(r["partialFingerprints"]["lintas/v1"]) == 16
    bandit_rules = {r["id"]: r for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert bandit_rules["B602"]["helpUri"].startswith("https://bandit.readthedocs.io/")
    assert "CWE-78" in bandit_rules["B602"]["properties"]["tags"]
    summary = scan.summary("secscan/r.sarif.json")
    assert summary["blocking"] == 2 and summary["top"][0]["blocking"] is True and len(json.dumps(summary)) < 3000


def test_allowlist_matching_and_expiry() -> None:
    today = date(2026, 6, 1)
    entries = Allowlist(
        allow=[
            AllowEntry(path="docs/**", reason="examples"),
            AllowEntry(path="a/*.yaml", rule="AWS-ACCESS-KEY-ID", line=3, reason="one line"),
            AllowEntry(path="c/*", fingerprint="0123456789abcdef", reason="this value only"),
            AllowEntry(path="d/*", reason="expired", expires=date(2026, 5, 31)),
        ]
    )
    out = entries.apply(
        [finding(), finding(line=4), finding(file="docs/x/y.md", rule="jwt"), finding(file="c/z"), finding(file="d/z")],
        today,
    )
    assert [f.suppressed for f in out] == ["one line", None, "examples", "this value only", None]
    assert [f.blocking for f in out] == [False, True, False, False, True]
