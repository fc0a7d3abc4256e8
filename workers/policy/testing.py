"""``lintas policy test [PATH]``: every Rego unit test, built-in and repo-local, as a table.

Rules named ``test_*`` (at the start of a line) in any module are tests; a test passes when
it evaluates to ``true``. Built-in tests run against the built-in library alone; the
repo's tests run against the built-ins plus the repo's policies, so they can import both.
The data document is the one the stage uses (defaults + ``LINTAS_POLICY_DATA``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lintas.workers.policy.config import PolicySettings
from lintas.workers.policy.engine import TestResult
from lintas.workers.policy.library import BUILTIN_PREFIX, builtin_modules, repo_modules

COLUMNS = ("status", "origin", "file", "line", "test", "error")


@dataclass
class PolicyTestReport:
    results: list[TestResult] = field(default_factory=list)
    backend: str = ""
    duration_s: float = 0.0

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        """One row per test, in ``COLUMNS`` order (for a rich table or plain text)."""
        return [
            (
                r.status.upper(),
                "built-in" if r.file.startswith(BUILTIN_PREFIX) else "repo",
                r.file,
                str(r.line),
                f"{r.package}.{r.name}",
                r.error or "",
            )
            for r in self.results
        ]

    def as_json(self) -> dict[str, Any]:
        """``{"backend", "ok", "passed", "failed", "duration_s", "columns", "tests": [{column: text}]}``"""
        return {
            "backend": self.backend,
            "ok": self.ok,
            "passed": self.passed,
            "failed": self.failed,
            "duration_s": round(self.duration_s, 3),
            "columns": list(COLUMNS),
            "tests": [dict(zip(COLUMNS, row, strict=True)) for row in self.rows()],
        }

    def text(self) -> str:
        widths = [
            max(len(c), *(len(row[i]) for row in self.rows())) if self.results else len(c)
            for i, c in enumerate(COLUMNS)
        ]
        lines = ["  ".join(c.upper().ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in self.rows()]
        lines.append(f"{self.passed} passed, {self.failed} failed ({self.backend}, {self.duration_s:.2f} s)")
        return "\n".join(lines)


def run_policy_tests(path: Path | None = None, *, config: PolicySettings | None = None) -> PolicyTestReport:
    """Run the built-in tests, and the tests of the repo at ``path`` if given.

    Raises :class:`~workers.policy.errors.PolicySyntaxError` (file, line) for a module that
    does not parse and :class:`~workers.policy.errors.PolicyError` when the engine fails.
    """
    config = config or PolicySettings()
    engine = config.engine()
    data = config.data()
    t0 = time.perf_counter()
    builtins = builtin_modules(config.policy_builtin_dir)
    results = engine.run_tests(builtins, data)
    if path is not None:
        local = repo_modules(path)
        if local:
            own = set(local)
            repo_results = engine.run_tests({**builtin_modules(config.policy_builtin_dir, tests=False), **local}, data)
            results += [r for r in repo_results if r.file in own]
    return PolicyTestReport(results, engine.name, time.perf_counter() - t0)
