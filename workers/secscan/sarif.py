"""Findings as a SARIF 2.1.0 log (one run per tool), and the compact summary kept on the run.

Locations are repo-relative URIs under ``uriBaseId: REPO``; results carry no snippets
(a snippet could hold the secret); allowlisted findings are kept, with a suppression.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from lintas.engine.contracts import SecscanSummary
from lintas.workers.secscan.findings import Finding

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
TOP = 10
_TOOLS = {"bandit": ("bandit", "https://bandit.readthedocs.io/"), "secrets": ("lintas-secrets", None)}


def level(f: Finding) -> str:
    if f.blocking:
        return "error"
    return "note" if f.severity == "low" or f.suppressed else "warning"


def _rule(f: Finding) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": f.rule, "name": f.name, "shortDescription": {"text": f.name}}
    if f.help_uri:
        rule["helpUri"] = f.help_uri
    if f.cwe:
        rule["properties"] = {"tags": [f"CWE-{f.cwe}"]}
    return rule


def _result(f: Finding, rule_index: int) -> dict[str, Any]:
    region: dict[str, Any] = {"startLine": f.line}
    if f.column:
        region["startColumn"] = f.column
    out: dict[str, Any] = {
        "ruleId": f.rule,
        "ruleIndex": rule_index,
        "level": level(f),
        "message": {"text": f.message},
        "locations": [
            {"physicalLocation": {"artifactLocation": {"uri": f.file, "uriBaseId": "REPO"}, "region": region}}
        ],
        "partialFingerprints": {"lintas/v1": f.fingerprint},
        "properties": {"severity": f.severity, "confidence": f.confidence, "blocking": f.blocking},
    }
    if f.suppressed is not None:
        out["suppressions"] = [{"kind": "external", "justification": f.suppressed}]
    return out


def sarif_log(
    findings: Iterable[Finding], *, versions: dict[str, str], notes: dict[str, list[str]], ok: bool = True
) -> dict[str, Any]:
    """``notes``: per tool, tool execution notifications (files not scanned and why)."""
    items = list(findings)
    runs = []
    for tool, (name, uri) in _TOOLS.items():
        mine = sorted((f for f in items if f.tool == tool), key=lambda f: (f.file, f.line, f.rule))
        rules: dict[str, int] = {}
        rule_list: list[dict[str, Any]] = []
        for f in mine:
            if f.rule not in rules:
                rules[f.rule] = len(rule_list)
                rule_list.append(_rule(f))
        invocation: dict[str, Any] = {"executionSuccessful": ok}
        if notes.get(tool):
            invocation["toolExecutionNotifications"] = [
                {"level": "warning", "message": {"text": n}} for n in notes[tool]
            ]
        runs.append(
            {
                "tool": {
                    "driver": {
                        "name": name,
                        "version": versions.get(tool, ""),
                        "rules": rule_list,
                        **({"informationUri": uri} if uri else {}),
                    }
                },
                "originalUriBaseIds": {"REPO": {"description": {"text": "the infra repository checkout"}}},
                "invocations": [invocation],
                "results": [_result(f, rules[f.rule]) for f in mine],
            }
        )
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": runs}


def summary(
    findings: list[Finding],
    *,
    files: int,
    python_files: int,
    skipped: int,
    report: str | None,
    thresholds: dict[str, str],
    duration_ms: float,
) -> dict[str, Any]:
    active = [f for f in findings if f.suppressed is None]
    order = sorted(active, key=lambda f: (not f.blocking, -"lmh".index(f.severity[0]), f.file, f.line))
    return SecscanSummary(
        report=report,
        format=f"sarif-{SARIF_VERSION}",
        files=files,
        python_files=python_files,
        skipped_files=skipped,
        blocking=sum(f.blocking for f in findings),
        findings=dict(sorted(Counter(f.tool for f in active).items())),
        by_severity=dict(sorted(Counter(f.severity for f in active).items())),
        allowlisted=sum(f.suppressed is not None for f in findings),
        thresholds=thresholds,
        top=[f.as_json() for f in order[:TOP]],
        duration_ms=round(duration_ms, 1),
    ).dump()
