"""The embedded backend: regorus (PyPI ``celine-regorus``, pinned), isolated in a child process.

``isolated=False`` evaluates in this process; it is faster by the cost of one Python
start (~30 ms) but cannot be interrupted, so only tests and benchmarks use it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lintas.workers.policy import sandbox
from lintas.workers.policy.engine import (
    DECISION_PACKAGE,
    DECISION_RULE,
    Decision,
    Modules,
    TestResult,
    decision_program,
    module_infos,
    parse_decision,
    regorus_error,
    syntax_error,
    test_rules,
)
from lintas.workers.policy.errors import PolicyError, PolicyEvaluationError, PolicyTimeoutError

SANDBOX = Path(sandbox.__file__).resolve()
DECISION_PATH = f"data.{DECISION_PACKAGE}.{DECISION_RULE}"


class RegorusEngine:
    name = "regorus"

    def __init__(self, *, timeout_s: float = 10.0, isolated: bool = True, memory_mb: int = 2048) -> None:
        self.timeout_s = timeout_s
        self.isolated = isolated
        self.memory_mb = memory_mb

    # ------------------------------------------------------------------ protocol
    def evaluate(self, modules: Modules, input: Mapping[str, Any], data: Mapping[str, Any]) -> Decision:
        program = decision_program(modules)
        header = {"op": "decide", "modules": program.modules, "data": dict(data), "rules": [DECISION_PATH]}
        out = self._call(header, json.dumps(input))
        return parse_decision(out["values"].get(DECISION_PATH), self.name)

    def run_tests(self, modules: Modules, data: Mapping[str, Any] | None = None) -> list[TestResult]:
        module_infos(modules)  # every module has a package
        tests = test_rules(modules)
        paths = [f"data.{pkg}.{rule}" for _, pkg, rule, _ in tests]
        header = {"op": "tests", "modules": dict(sorted(modules.items())), "data": dict(data or {}), "rules": paths}
        out = self._call(header, "{}")
        results = []
        for (file, pkg, rule, line), path in zip(tests, paths, strict=True):
            err = out["errors"].get(path)
            value = out["values"].get(path)
            results.append(
                TestResult(
                    pkg,
                    rule,
                    file,
                    line,
                    passed=err is None and value is True,
                    error=regorus_error(err)[0] if err else None,
                )
            )
        return results

    # ------------------------------------------------------------------ plumbing
    def _call(self, header: dict[str, Any], input_json: str) -> dict[str, Any]:
        if self.isolated:
            out = self._child(header, input_json)
        else:
            out = sandbox.run_rules(header, input_json, stop_at_first_error=header["op"] == "decide")
        if not out.get("ok"):
            phase, text = out.get("phase"), str(out.get("error"))
            msg, file, line, col = regorus_error(text)
            if phase == "parse":
                raise syntax_error(file or "?", line, col, msg)
            raise PolicyEvaluationError(
                f"regorus: {phase} error: {msg}" + (f" at {file}:{line}" if file else ""),
                file=file,
                line=line,
                column=col,
            )
        return out

    def _child(self, header: dict[str, Any], input_json: str) -> dict[str, Any]:
        payload = json.dumps(header).encode() + b"\n" + input_json.encode()
        cpu = max(1, int(self.timeout_s) + 1)
        try:
            proc = subprocess.run(
                [sys.executable, "-I", str(SANDBOX), str(self.memory_mb), str(cpu)],
                input=payload,
                capture_output=True,
                timeout=self.timeout_s,
                env={"RUST_BACKTRACE": "0"},
                cwd="/",
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PolicyTimeoutError(
                f"regorus: evaluation did not finish in {self.timeout_s:g} s (evaluating process killed)"
            ) from None
        except OSError as exc:
            raise PolicyError(f"regorus: cannot start the evaluating process: {exc}") from exc
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
            why = "killed by a resource limit" if proc.returncode < 0 else f"exit code {proc.returncode}"
            raise PolicyEvaluationError(f"regorus: evaluating process failed ({why}): {' '.join(tail)[:500]}")
        try:
            out: dict[str, Any] = json.loads(proc.stdout)
        except ValueError as exc:
            raise PolicyEvaluationError(f"regorus: unreadable answer from the evaluating process: {exc}") from exc
        return out
