"""Rendering of runs and stages for the terminal (rich) and for scripts (--json)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lintas.engine.contracts import (
    PolicySummary,
    RollbackSummary,
    SecscanSummary,
    TwinReport,
    TwinSummary,
    VerifySummary,
    result_as,
)
from lintas.engine.events import LogLine
from lintas.engine.redact import Redactor
from lintas.engine.views import RunDetail, RunSummary

STATE_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "rolled_back": "yellow",
    "canceled": "dim",
    "superseded": "dim",
    "running": "cyan",
    "queued": "blue",
    "waiting_approval": "magenta",
    "pending": "blue",
    "skipped": "dim",
}


PIPED_WIDTH = 1_000_000
"""Width of a console whose output is not a terminal: wide enough that rich never wraps or
truncates (a table is as wide as its content)."""


def make_console(*, stderr: bool = False) -> Console:
    """A console for people when the stream is a terminal (rich, fitted to its width); otherwise
    one for scripts, pagers and log shippers: no colours, no wrapping, no truncation."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, width=PIPED_WIDTH, soft_wrap=True, no_color=True, highlight=False)


def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1000:.0f}ms" if s < 1 else f"{s:.1f}s"


def _ts(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _iso(t: datetime | None) -> str:
    return t.isoformat(timespec="seconds") if t else "-"


def _ago(t: datetime | None, now: datetime | None = None) -> str:
    """``42s ago``, ``5m ago``, ``3h ago``, ``2d ago``."""
    if t is None:
        return "-"
    secs = max(0.0, ((now or datetime.now(UTC)) - t).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{int(secs // size)}{unit} ago"
    return f"{int(secs)}s ago"


def _name(author: str) -> str:
    """``Ada Operator <ada@example.org>`` -> ``Ada Operator``."""
    return author.split("<", 1)[0].strip() or author


def _state(s: str) -> str:
    return f"[{STATE_STYLE.get(s, 'white')}]{s}[/]"


def table(console: Console, headers: Sequence[str], rows: Sequence[Sequence[str]], *, compact: bool = False) -> None:
    """A table for people (rich, fitted to the terminal, states coloured) or, when stdout is not
    a terminal, for scripts: plain columns separated by two spaces, never wrapped or truncated."""
    if not console.is_terminal:
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
        for row in [list(headers), *rows]:
            console.file.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
        console.file.flush()
        return
    if compact:  # one space between columns, no borders, never wrapped
        t = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
        for h in headers:
            t.add_column(h, no_wrap=True, overflow="ellipsis")
    else:
        t = Table(*headers, box=box.HEAVY_HEAD, header_style="bold")
    state = headers.index("state") if "state" in headers else -1
    for row in rows:
        t.add_row(*[_state(c) if i == state else escape(c) for i, c in enumerate(row)])
    console.print(t)


def print_runs(console: Console, runs: Sequence[RunSummary], as_json: bool, *, wide: bool = False) -> None:
    if as_json:
        console.print_json(json.dumps([r.model_dump(mode="json") for r in runs]))
        return
    if wide or not console.is_terminal:  # everything, untruncated
        headers = ["run", "repo", "ref", "sha", "author", "state", "duration", "created"]
        rows = [
            [
                r.run_id,
                r.repo,
                r.ref.removeprefix("refs/heads/"),
                r.short_sha,
                r.author,
                r.state,
                _dur(r.duration_s),
                _iso(r.created_at),
            ]
            for r in runs
        ]
    else:  # fits 80 columns: short run id (`lintas show` takes it), the author's name, relative times
        headers = ["run", "repo", "ref", "sha", "author", "state", "took", "created"]
        rows = [
            [
                r.run_id[:10],
                _cut(r.repo, 10),
                _cut(r.ref.removeprefix("refs/heads/"), 10),
                r.short_sha[:7],
                _cut(_name(r.author), 11),
                r.state,
                _dur(r.duration_s),
                _ago(r.created_at),
            ]
            for r in runs
        ]
    table(console, headers, rows, compact=not wide and console.is_terminal)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def print_run(console: Console, run: RunDetail, as_json: bool) -> None:
    if as_json:
        console.print_json(run.model_dump_json())
        return
    say = _sayer(console)
    say(
        f"[bold]{escape(run.run_id)}[/]  {escape(run.repo)} {escape(run.ref)} @ {run.short_sha}  by "
        f"{escape(run.author or '?')}"
    )
    say(f"  {escape(run.message)}")
    say(
        f"  state: {_state(run.state)}   duration: {_dur(run.duration_s)}   "
        f"pipeline: {escape(run.pipeline or '-')} ({escape(run.pipeline_source or '-')})"
    )
    if run.error:
        say(f"  [red]error:[/] {escape(run.error)}")
    for d in run.diagnostics:
        say(f"    [red]{escape(str(d))}[/]")
    if run.approval_reasons:
        say(f"  approval: {escape('; '.join(run.approval_reasons))} (approved by {run.approved_by or 'nobody yet'})")
    for w in run.warnings:
        say(f"  [yellow]warning:[/] {escape(w)}")
    rows = [
        [
            s.name + (" (on failure)" if s.on_failure else ""),
            s.state,
            s.worker or "-",
            str(s.attempts),
            _ts(s.started_at),
            _dur(s.duration_s),
            s.error or s.skip_reason or "",
        ]
        for s in run.stages
    ]
    table(console, ["stage", "state", "worker", "attempts", "started", "duration", "error"], rows)
    for s in run.stages:
        for d in s.diagnostics:
            say(f"  [red]{escape(s.name)}:[/] {escape(str(d))}")
    for s in run.stages:  # the stages that end on checks (verify, rollback), found by kind
        result = result_as(s, VerifySummary) or result_as(s, RollbackSummary)
        checks = result.failing() if result is not None else []
        if checks:
            say(f"\n[bold]failing checks[/] ({escape(s.name)}):")
            checks_table(console, checks)


def print_twin(console: Console, stage: str, summary: TwinSummary, report: TwinReport | None) -> None:
    """The twin stage's report (``twin/<run>.json``): what was built, each part's time, the failing
    checks with expected vs observed. Without the stored report, what the stage's summary holds."""
    say, mask = _sayer(console), Redactor()  # an error's text as the API would serve it
    required = f"  required by: {escape('; '.join(summary.required_by))}" if summary.required else ""
    unproven = [f"  [yellow]NOT proven[/]: {escape(line)}" for line in summary.unproven]
    unproven += [f"  approval: {escape(r)}" for r in summary.approval]
    if summary.skipped:  # no twin was built (workers/twin/gate.py)
        say(f"\n[bold]twin[/] (stage {escape(stage)}): [yellow]NOT proven[/]: {escape(mask(summary.skipped))}")
        for line in [required] * bool(required) + unproven:
            say(line)
        return
    verdict = "[green]passed[/]" if summary.passed else "[red]failed[/]"
    say(f"\n[bold]twin[/] (stage {escape(stage)}, {escape(summary.report or '-')}): {verdict}")
    for line in [required] * bool(required) + unproven:
        say(line)
    if report is not None:
        hosts = f", {len(report.hosts)} host(s)" if report.hosts else ""
        say(
            f"  twin {escape(report.twin or '-')} ({escape(report.prefix or '-')}): {len(report.switches)} switch(es){hosts}"
        )
        _twin_slice(say, report.slice, report.whole)
        started = ", ".join(f"{n}: {v[:17]}" for n, v in sorted(report.started_from.items()))  # short commits
        say(f"  started from {escape(report.start)}" + (f" ({escape(started)})" if started else ""))
        say(f"  committed: {escape(', '.join(report.committed) or '-')}")
        if report.phases:
            table(
                console,
                ["phase", "time", "ok", "detail"],
                [[p.name, _dur(p.seconds), "yes" if p.ok else "no", mask(p.detail)] for p in report.phases]
                + [["total", _dur(report.timings()["total_s"]), "", ""]],
            )
        if report.error:
            say(f"  [red]error:[/] {escape(mask(report.error))}")
        checks = report.failing()
    else:
        hosts = f"; hosts: {escape(', '.join(summary.hosts))}" if summary.hosts else ""
        say(
            f"  switches: {escape(', '.join(summary.switches) or '-')}{hosts}; started from {escape(summary.start or '-')}"
        )
        _twin_slice(say, summary.slice, summary.whole)
        say(f"  committed: {escape(', '.join(summary.committed) or '-')}")
        parts = [f"{k.removesuffix('_s')} {_dur(v)}" for k, v in summary.timings.items()]
        say(f"  timings: {escape(', '.join(parts) or '-')}")
        checks = [c for c in summary.checks if c.get("passed") is False]
    scope = report.out_of_scope if report is not None else summary.out_of_scope
    if scope:
        say("  out of scope (not proven by this twin):")
        for line in scope:
            say(f"    - {escape(line)}")
    if checks:
        say("  failing checks:")
        checks_table(console, checks)


def _twin_slice(say: Callable[[str], None], cut: dict[str, list[str]], whole: bool) -> None:
    """The change's slice: each switch and host the twin holds and why."""
    if whole:
        say("  the whole topology: the change touches every switch")
    elif cut:
        say("  the change's slice:")
        for name, why in sorted(cut.items()):
            say(f"    {escape(name)}: {escape(', '.join(why))}")


def checks_table(console: Console, checks: Sequence[dict[str, Any]]) -> None:
    """Failing checks, one row each: the target, the check, its subject, expected vs observed."""
    table(
        console,
        ["target", "check", "subject", "expected", "observed"],
        [
            [
                str(c.get("device", "")),
                str(c.get("check", "")),
                str(c.get("subject", "")),
                _value(c.get("expected")),
                _value(c.get("observed")),
            ]
            for c in checks
        ],
    )


def _value(v: object) -> str:
    """A check's expected/observed value as people write it: lists joined, no Python reprs."""
    if v is None:
        return "-"
    if isinstance(v, list | tuple):
        return ", ".join(_value(x) for x in v) or "(none)"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_value(x)}" for k, x in v.items()) or "(none)"
    return str(v)


def _sayer(console: Console) -> Callable[[str], None]:
    """Print one line: styled in a terminal; plain and never wrapped for scripts."""

    def say(text: str) -> None:
        console.print(text, soft_wrap=True, highlight=False)

    return say


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
    console.print(
        f"\nPlan against {plan['against']}: {counts['new']} new, {counts['changed']} to change, "
        f"{counts['removed']} to remove, {counts['unchanged']} unchanged.",
        soft_wrap=True,
    )


def print_gates(console: Console, run: RunDetail) -> None:
    """Policy decisions and security findings kept in stage summaries (no secret values: the
    scanners never put them there)."""
    for stage in run.stages:  # by kind (engine.contracts), whatever the pipeline calls the stages
        if (p := result_as(stage, PolicySummary)) is not None and "violations" in p.model_fields_set:
            console.print(
                f"\n[bold]policy[/] ({stage.name}, {p.backend}): {p.deny} deny, "
                f"{p.require_approval} approval, {p.require_twin} twin, {p.warn} warn",
                soft_wrap=True,
            )
            for v in p.violations:
                style = {"deny": "red", "require_approval": "magenta", "require_twin": "magenta"}.get(
                    str(v.get("decision")), "yellow"
                )
                console.print(
                    f"  [{style}]{v.get('decision')}[/] {escape(str(v.get('policy')))}: "
                    f"{escape(str(v.get('message')))}",
                    soft_wrap=True,
                )
        if (sc := result_as(stage, SecscanSummary)) is not None and sc.format.startswith("sarif"):
            console.print(
                f"\n[bold]security[/] ({stage.name}): {sc.blocking} blocking, findings "
                f"{sc.findings}, {sc.allowlisted} allowlisted",
                soft_wrap=True,
            )
            for f in sc.top:
                mark = "[red]BLOCK[/]" if f.get("blocking") else f"[yellow]{f.get('severity')}[/]"
                console.print(
                    f"  {mark} {f.get('tool')}/{f.get('rule')} {f.get('file')}:{f.get('line')} "
                    f"{escape(str(f.get('message')))}",
                    soft_wrap=True,
                )
