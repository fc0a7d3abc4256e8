"""Piped output (not a terminal) loses no characters: every command's lines are whole, however
narrow the terminal the environment claims (COLUMNS), so `grep`, `less` and log shippers see
what `--json` holds. The server-backed commands (runs, show, logs) are covered in
tests/integration/test_cli.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _lintas(home: Path, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LINTAS_HOME": str(home), "COLUMNS": "30", "LINES": "10", "TERM": "xterm-256color"}
    env.pop("LINTAS_NATS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "lintas.engine.cli.main", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("a-rather-long-directory-name-so-that-paths-pass-eighty-columns")
    home = base / "home"
    _lintas(home, "init", str(base / "demo"))
    return home, base / "demo"


def _lines(text: str) -> list[str]:
    return [ln.rstrip() for ln in text.splitlines()]


def test_validate_summary_is_one_line(demo: tuple[Path, Path]) -> None:
    home, repo = demo
    out = _lintas(home, "validate", str(repo)).stdout
    (line,) = [ln for ln in _lines(out) if ln]
    assert line.startswith("valid: ") and "; model: " in line and "; templates: rendered for 8 target(s)" in line


def test_policy_test_rows_are_whole(demo: tuple[Path, Path]) -> None:
    home, repo = demo
    tests = json.loads(_lintas(home, "policy", "test", str(repo), "--json").stdout)["tests"]
    lines = _lines(_lintas(home, "policy", "test", str(repo)).stdout)
    assert not any(ch in "".join(lines) for ch in "│┃…")  # plain columns, no box, nothing elided
    for t in tests:
        assert any(
            ln.split()[:4] == [t["status"], t["origin"], t["file"], str(t["line"])] and t["test"] in ln.split()
            for ln in lines
        ), t


def test_plan_diff_lines_are_whole(demo: tuple[Path, Path]) -> None:
    home, repo = demo
    tenants = repo / "fabric" / "tenants.yaml"
    original = tenants.read_text()
    tenants.write_text(
        original
        + (
            "\n  - name: uat-db\n    vrf: UAT\n"
            "    vlan: 30\n    vni: 10030\n    gateway: 10.30.30.1/24\n    mtu: 9000\n    leaves: [leaf-01]\n"
        )
    )
    try:
        plan = json.loads(_lintas(home, "plan", str(repo), "--against", "HEAD", "--json").stdout)
        text = _lines(_lintas(home, "plan", str(repo), "--against", "HEAD").stdout)
    finally:
        tenants.write_text(original)
    diffs = [ln for tp in plan["targets"].values() for d in tp["diffs"] for ln in d["diff"].splitlines()]
    assert diffs and max(map(len, diffs)) > 30  # wider than the terminal COLUMNS claims
    for ln in diffs:
        assert f"    {ln}".rstrip() in text, ln
    assert any(
        ln.startswith("Plan against commit ") and ln.endswith(": 0 new, 1 to change, 0 to remove, 7 unchanged.")
        for ln in text
    ), text


def test_doctor_lines_are_whole(demo: tuple[Path, Path]) -> None:
    home, repo = demo
    out = _lintas(home, "doctor", "--repo", str(repo), check=False).stdout
    lines = _lines(out)
    assert any(str(repo) in ln or "leaf-01" in ln for ln in lines), out
    assert not any("…" in ln for ln in lines)
    assert all(len(ln.split()) >= 2 for ln in lines if ln), out  # no fragment wrapped onto its own line
