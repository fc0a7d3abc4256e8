"""Evaluate Rego with regorus, in this process or as a child process with hard limits.

regorus holds the GIL while it evaluates, so a runaway policy would freeze the
worker's event loop (heartbeats included) and no in-process timeout could stop it.
The policy stage therefore runs this file as a script (``python -I sandbox.py
MEMORY_MB CPU_S``) with an empty environment, a memory cap and a CPU-time cap, and
kills it when the wall-clock timeout passes.

Protocol: stdin is one JSON header line, then the raw input document (JSON).
The header is ``{"op": "rules", "modules": {file: source}, "data": {...},
"rules": ["data.x.y", ...]}``. stdout is one JSON object: ``{"ok": true, "values":
{rule: value | null, ...}, "errors": {rule: message, ...}}`` or ``{"ok": false,
"phase": "parse" | "data" | "input", "error": message}``. An undefined rule is null.

This module imports only the standard library and regorus: it must run without Lintas.
"""

from __future__ import annotations

import json
import sys
from typing import Any

UNDEFINED = "<undefined>"


def run_rules(header: dict[str, Any], input_json: str, *, stop_at_first_error: bool) -> dict[str, Any]:
    import regorus  # type: ignore[import-untyped,unused-ignore]

    engine = regorus.Engine()
    for name, source in header["modules"].items():
        try:
            engine.add_policy(name, source)
        except Exception as exc:  # regorus raises RuntimeError with a located message
            return {"ok": False, "phase": "parse", "error": str(exc)}
    try:
        engine.add_data_json(json.dumps(header.get("data") or {}))
    except Exception as exc:
        return {"ok": False, "phase": "data", "error": str(exc)}
    try:
        engine.set_input_json(input_json or "{}")
    except Exception as exc:
        return {"ok": False, "phase": "input", "error": str(exc)}
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for rule in header["rules"]:
        try:
            value = json.loads(engine.eval_rule_as_json(rule))
        except Exception as exc:
            if stop_at_first_error:
                return {"ok": False, "phase": "eval", "error": str(exc)}
            errors[rule] = str(exc)
            continue
        values[rule] = None if value == UNDEFINED else value
    return {"ok": True, "values": values, "errors": errors}


def _limit(memory_mb: int, cpu_s: int) -> None:
    import resource

    mem = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))


def main() -> None:
    _limit(int(sys.argv[1]), int(sys.argv[2]))
    raw = sys.stdin.buffer.read()
    head, _, rest = raw.partition(b"\n")
    header = json.loads(head)
    out = run_rules(header, rest.decode("utf-8"), stop_at_first_error=header.get("op") == "decide")
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
