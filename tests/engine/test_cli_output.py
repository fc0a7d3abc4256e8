"""`lintas runs` and `lintas show` output: fitted to an 80-column terminal for people, plain and
complete for scripts, and failing checks as a table rather than Python reprs."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console

from lintas.engine.cli.output import print_run, print_runs
from lintas.engine.views import RunDetail, RunSummary, StageView

AUTHOR = "Ada Operator-Lovelace <ada.operator-lovelace@payments.bank.example.org>"


def _summary(i: int) -> RunSummary:
    now = datetime.now(UTC)
    return RunSummary(
        run_id=f"r-{i:016x}a1b2c3d4",
        repo="infra-production-dc1",
        ref="refs/heads/release/2026-12",
        sha="0123456789abcdef" * 2 + "01234567",
        short_sha="01234567",
        author=AUTHOR,
        message="add VNI",
        source="hook",
        state="rolled_back",
        created_at=now - timedelta(minutes=7, seconds=5),
        finished_at=now,
        duration_s=93.2,
        error=None,
    )


def _console(terminal: bool, width: int = 80) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=width, color_system=None), buf


def test_runs_fit_80_columns_in_a_terminal() -> None:
    console, buf = _console(terminal=True)
    print_runs(console, [_summary(i) for i in range(3)], as_json=False)
    lines = buf.getvalue().splitlines()
    assert lines and all(len(ln) <= 80 for ln in lines), "\n".join(lines)
    text = buf.getvalue()
    assert "7m ago" in text and "Ada Operat" in text and "@" not in text  # the name, not the address


def test_runs_wide_and_piped_keep_every_character() -> None:
    piped, buf = _console(terminal=False)
    run = _summary(1)
    print_runs(piped, [run], as_json=False)
    row = buf.getvalue().splitlines()[1]
    assert AUTHOR in row and run.run_id in row and "release/2026-12" in row
    assert run.created_at.isoformat(timespec="seconds") in row
    wide, buf2 = _console(terminal=True, width=300)
    print_runs(wide, [_summary(1)], as_json=False, wide=True)
    assert AUTHOR in buf2.getvalue()


def test_show_prints_failing_checks_as_a_table() -> None:
    checks = [
        {
            "device": "leaf-01",
            "check": "vni_vteps",
            "subject": "vni 10010",
            "passed": False,
            "expected": ["10.250.1.12", "10.250.1.14"],
            "observed": ["10.250.1.12"],
            "note": "",
        },
        {
            "device": "leaf-02",
            "check": "bgp_session",
            "subject": "10.250.16.5",
            "passed": True,
            "expected": "Established",
            "observed": "Established",
            "note": "",
        },
    ]
    now = datetime.now(UTC)
    stage = StageView(
        name="verify",
        kind="verify",
        state="failed",
        on_failure=False,
        worker="w1",
        attempts=1,
        deliveries=1,
        started_at=now,
        finished_at=now,
        duration_s=25.0,
        error="1 check(s) failed",
        skip_reason=None,
        diagnostics=[],
        summary={"checks": checks},
    )
    run = RunDetail(
        **_summary(1).model_dump(),
        pipeline="infra",
        pipeline_source="default",
        changed_paths=None,
        approval_reasons=[],
        approved_by=None,
        approvals=[],
        warnings=[],
        superseded_by=None,
        retry_of=None,
        diagnostics=[],
        stages=[stage],
    )
    console, buf = _console(terminal=False)
    print_run(console, run, as_json=False)
    text = buf.getvalue()
    assert "failing checks (verify):" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("leaf-01"))
    assert row.split()[:4] == ["leaf-01", "vni_vteps", "vni", "10010"]
    assert "10.250.1.12, 10.250.1.14" in row and "['" not in text  # no Python reprs
    assert "bgp_session" not in text  # passing checks are not listed
