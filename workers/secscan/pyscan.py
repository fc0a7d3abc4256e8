"""bandit over the repo's Python files, as a library: it parses each file's AST and never
imports or runs it. The repo's own bandit configuration (``.bandit``, ``pyproject.toml``)
is not read, so a repo cannot switch tests off; ``# nosec`` is ignored unless the stage
options say otherwise (false positives go in the allowlist, where a reviewer sees them).
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path
from typing import Any

from lintas.workers.secscan.files import RepoFile
from lintas.workers.secscan.findings import Finding, Level, fingerprint, mask_quoted

_LOG = logging.getLogger("bandit")


_IMPORT_LOCK = threading.Lock()


def _bandit() -> tuple[Any, Any, Any]:
    """bandit's modules. Its plugin loader passes stevedore an argument stevedore deprecated;
    that DeprecationWarning (not ours to fix) is silenced while bandit loads its plugins."""
    with _IMPORT_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*verify_requirements.*")
        from bandit.core import config, docs_utils, manager  # type: ignore[import-untyped,unused-ignore]
    return config, docs_utils, manager


def _level(value: str) -> Level:
    v = value.lower()
    return "high" if v == "high" else "medium" if v == "medium" else "low"


def scan_python(root: Path, files: list[RepoFile], *, honor_nosec: bool) -> tuple[list[Finding], list[tuple[str, str]]]:
    """(findings at every severity, files bandit could not parse with the reason)."""
    if not files:
        return [], []
    b_config, docs_utils, b_manager = _bandit()

    by_path = {str(root / f.rel): f for f in files}
    mgr = b_manager.BanditManager(b_config.BanditConfig(), "file", quiet=True, ignore_nosec=not honor_nosec)
    mgr.files_list = sorted(by_path)
    level = _LOG.level
    _LOG.setLevel(logging.CRITICAL)  # bandit logs each unparsable file; we report them ourselves
    try:
        mgr.run_tests()
    finally:
        _LOG.setLevel(level)
    findings = []
    for issue in mgr.get_issue_list():
        f = by_path.get(issue.fname)
        if f is None:
            continue
        lines = f.text.splitlines()
        code = lines[issue.lineno - 1].strip() if 0 < issue.lineno <= len(lines) else ""
        findings.append(
            Finding(
                tool="bandit",
                rule=issue.test_id,
                name=issue.test,
                file=f.rel,
                line=issue.lineno,
                column=(issue.col_offset + 1) if issue.col_offset is not None else None,
                severity=_level(issue.severity),
                confidence=_level(issue.confidence),
                message=mask_quoted(issue.text),
                fingerprint=fingerprint(issue.test_id, f.rel, mask_quoted(code)),
                cwe=issue.cwe.id if issue.cwe else None,
                help_uri=docs_utils.get_url(issue.test_id),
            )
        )
    skipped = [(by_path[name].rel if name in by_path else name, why) for name, why in mgr.get_skipped()]
    return findings, skipped
