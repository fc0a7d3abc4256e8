"""One scan of a checkout: collect files, run bandit and the secret rules, apply the allowlist
and the thresholds. Blocking (no NATS); the stage and `lintas secscan` both call it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

from lintas.engine.repofs import RepoFS
from lintas.workers.secscan.allowlist import load_allowlist
from lintas.workers.secscan.files import collect
from lintas.workers.secscan.findings import Finding, SecscanOptions, at_least, fingerprint
from lintas.workers.secscan.pyscan import scan_python
from lintas.workers.secscan.sarif import sarif_log, summary
from lintas.workers.secscan.secrets import scan_secrets

SECRETS_VERSION = "1"


@dataclass
class ScanResult:
    findings: list[Finding]
    files: int
    python_files: int
    skipped: list[tuple[str, str]]
    unparsable: list[tuple[str, str]]
    options: SecscanOptions
    duration_ms: float
    notes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    def sarif(self) -> dict[str, Any]:
        return sarif_log(
            self.findings, versions={"bandit": version("bandit"), "secrets": SECRETS_VERSION}, notes=self.notes
        )

    def summary(self, report: str | None) -> dict[str, Any]:
        return summary(
            self.findings,
            files=self.files,
            python_files=self.python_files,
            skipped=len(self.skipped),
            report=report,
            duration_ms=self.duration_ms,
            thresholds={"severity": self.options.severity, "confidence": self.options.confidence},
        )


def _blocking(f: Finding, opts: SecscanOptions) -> bool:
    if f.tool == "secrets":
        return True  # a secret in the repo always blocks (allowlist false positives)
    if f.rule == "unparsable":
        return opts.unparsable == "fail"
    return at_least(f.severity, opts.severity) and at_least(f.confidence, opts.confidence)


def scan_repo(root: Path, opts: SecscanOptions | None = None) -> ScanResult:
    """Raises InputError (file, line) for a broken allowlist."""
    opts = opts or SecscanOptions()
    t0 = time.perf_counter()
    allowlist = load_allowlist(RepoFS(root), opts.allowlist)
    inv = collect(root, max_file_bytes=opts.max_file_bytes)
    python = inv.python
    bandit_findings, unparsable = scan_python(root, python, honor_nosec=opts.honor_nosec)
    big_python = [(rel, why) for rel, why in inv.skipped if rel.endswith((".py", ".pyw"))]
    unparsable_findings = [
        Finding(
            tool="bandit",
            rule="unparsable",
            name="file not scanned",
            file=rel,
            line=1,
            severity="medium",
            confidence="high",
            message=f"Python file not scanned by bandit: {why}",
            fingerprint=fingerprint("unparsable", rel),
        )
        for rel, why in [*unparsable, *big_python]
    ]
    findings = [*bandit_findings, *unparsable_findings, *scan_secrets(inv.files, opts.entropy)]
    findings = [replace(f, blocking=_blocking(f, opts)) for f in findings]
    findings = allowlist.apply(findings)
    notes = {
        "bandit": [f"{rel}: not scanned ({why})" for rel, why in [*unparsable, *big_python]],
        "secrets": [f"{rel}: not scanned ({why})" for rel, why in inv.skipped],
    }
    return ScanResult(
        findings, len(inv.files), len(python), inv.skipped, unparsable, opts, (time.perf_counter() - t0) * 1000, notes
    )
