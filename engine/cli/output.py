"""Rendering of runs and stages for the terminal (rich) and for scripts (--json)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.events import LogLine
from engine.views import RunDetail, RunSummary

STATE_STYLE = {
    "succeeded": "green", "failed": "red", "rolled_back": "yellow", "canceled": "dim", "superseded": "dim",
    "running": "cyan", "queued": "blue", "waiting_approval": "magenta", "pending": "blue", "skipped": "dim",
}


def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1000:.0f}ms" if s < 1 else f"{s:.1f}s"


def _ts(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _state(s: str) -> str:
    return f"[{STATE_STYLE.get(s, 'white')}]{s}[/]"


def print_runs(console: Console, runs: Sequence[RunSummary], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps([r.model_dump(mode="json") for r in runs]))
        return
    t = Table("run", "repo", "ref", "sha", "author", "state", "duration", "created")
    for r in runs:
        t.add_row(r.run_id, r.repo, r.ref.removeprefix("refs/heads/"), r.short_sha, r.author, _state(r.state),
                  _dur(r.duration_s), _ts(r.created_at))
    console.print(t)


def print_run(console: Console, run: RunDetail, as_json: bool) -> None:
    if as_json:
        console.print_json(run.model_dump_json())
        return
    console.print(f"[bold]{run.run_id}[/]  {run.repo} {run.ref} @ {run.short_sha}  by {run.author or '?'}")
    console.print(f"  {run.message}")
    console.print(f"  state: {_state(run.state)}   duration: {_dur(run.duration_s)}   "
                  f"pipeline: {run.pipeline or '-'} ({run.pipeline_source or '-'})")
    if run.error:
        console.print(f"  [red]error:[/] {run.error}")
    for d in run.diagnostics:
        console.print(f"    [red]{d}[/]")
    if run.approval_reasons:
        console.print(f"  approval: {'; '.join(run.approval_reasons)} (approved by {run.approved_by or 'nobody yet'})")
    for w in run.warnings:
        console.print(f"  [yellow]warning:[/] {w}")
    t = Table("stage", "state", "worker", "attempts", "started", "duration", "error")
    for s in run.stages:
        t.add_row(s.name + (" (on failure)" if s.on_failure else ""), _state(s.state), s.worker or "-",
                  str(s.attempts), _ts(s.started_at), _dur(s.duration_s), s.error or s.skip_reason or "")
    console.print(t)
    for s in run.stages:
        for d in s.diagnostics:
            console.print(f"  [red]{s.name}:[/] {d}")


def format_log(line: LogLine) -> str:
    stage = f"[{line.stage}]" if line.stage else "[run]"
    who = f" ({line.worker})" if line.worker and line.worker != "engine" else ""
    return f"{line.ts.strftime('%H:%M:%S.%f')[:-3]} {line.level.upper():7} {stage}{who} {line.message}"


def print_plan(console: Console, plan: dict[str, object], as_json: bool) -> None:
    """A plan document (see workers/render/plan.py) as `terraform plan`-style text."""
    if as_json:
        console.print_json(json.dumps(plan))
        return
    targets = plan["targets"]
    assert isinstance(targets, dict)
    counts = {"new": 0, "changed": 0, "removed": 0, "unchanged": 0}
    for name in sorted(targets):
        tp = targets[name]
        counts[tp["status"]] += 1
        if tp["status"] == "unchanged":
            continue
        mark = {"new": "[green]+[/]", "changed": "[yellow]~[/]", "removed": "[red]-[/]"}[tp["status"]]
        console.print(f"{mark} [bold]{name}[/] ({tp['status']})", soft_wrap=True)
        for d in tp["diffs"]:
            for line in d["diff"].splitlines():
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
                console.print(f"    [{style}]{escape(line)}[/]", highlight=False, soft_wrap=True)
    console.print(f"\nPlan against {plan['against']}: {counts['new']} new, {counts['changed']} to change, "
                  f"{counts['removed']} to remove, {counts['unchanged']} unchanged.", soft_wrap=True)


def print_gates(console: Console, run: RunDetail) -> None:
    """Policy decisions and security findings kept in stage summaries (no secret values: the
    scanners never put them there)."""
    for stage in run.stages:
        s = stage.summary
        if "violations" in s:
            console.print(f"\n[bold]policy[/] ({stage.name}, {s.get('backend')}): {s.get('deny', 0)} deny, "
                          f"{s.get('require_approval', 0)} approval, {s.get('warn', 0)} warn", soft_wrap=True)
            for v in s["violations"]:
                style = {"deny": "red", "require_approval": "magenta"}.get(v.get("decision"), "yellow")
                console.print(f"  [{style}]{v.get('decision')}[/] {escape(str(v.get('policy')))}: "
                              f"{escape(str(v.get('message')))}", soft_wrap=True)
        if str(s.get("format", "")).startswith("sarif"):
            console.print(f"\n[bold]security[/] ({stage.name}): {s.get('blocking', 0)} blocking, findings "
                          f"{s.get('findings', {})}, {s.get('allowlisted', 0)} allowlisted", soft_wrap=True)
            for f in s.get("top", []):
                mark = "[red]BLOCK[/]" if f.get("blocking") else f"[yellow]{f.get('severity')}[/]"
                console.print(f"  {mark} {f.get('tool')}/{f.get('rule')} {f.get('file')}:{f.get('line')} "
                              f"{escape(str(f.get('message')))}", soft_wrap=True)
