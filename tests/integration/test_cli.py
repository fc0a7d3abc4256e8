"""The `lintas` command line against a real background `lintas up`: the user's path."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lintas.engine.settings import Settings
from tests.conftest import subprocess_env
from tests.integration.helpers import commit, git, make_repo, pipeline, push, run_id_of


def lintas(settings: Settings, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lintas.engine.cli.main", *args],
        env=subprocess_env(settings),
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


@pytest.fixture
def up(settings: Settings):  # type: ignore[no-untyped-def]
    lintas(settings, "up", "--detach")
    try:
        yield settings
    finally:
        out = lintas(settings, "down")
        assert "stopped" in out.stdout


def test_runs_show_logs_and_json_shapes(tmp_path: Path, up: Settings) -> None:
    settings = up
    repo = make_repo(tmp_path, settings)
    sha = commit(repo, settings, {"fabric/extra.yaml": "vnis: [10030]\n"}, "add VNI 10030")
    out = push(repo, settings)
    assert "remote: lintas: published 1 event(s)" in out.stderr
    rid = run_id_of(repo, sha)
    assert lintas(settings, "wait", rid).stdout.strip() == "succeeded"

    runs = json.loads(lintas(settings, "runs", "--json").stdout)
    mine = [r for r in runs if r["run_id"] == rid]
    assert len(mine) == 1
    assert set(mine[0]) == {
        "run_id",
        "repo",
        "ref",
        "sha",
        "short_sha",
        "author",
        "message",
        "source",
        "state",
        "created_at",
        "finished_at",
        "duration_s",
        "error",
    }
    assert mine[0]["state"] == "succeeded" and mine[0]["short_sha"] == sha[:8] and mine[0]["repo"] == "infra"

    detail = json.loads(lintas(settings, "show", rid, "--json").stdout)
    assert [s["name"] for s in detail["stages"]] == ["validate", "render", "policy", "secscan"]
    stage = detail["stages"][0]
    assert stage["state"] == "succeeded" and stage["attempts"] == 1 and stage["worker"]
    assert detail["changed_paths"] == ["fabric/extra.yaml"]

    table = lintas(settings, "show", rid).stdout
    assert "validate" in table and "succeeded" in table
    assert "plan (stage render" in table and "+ leaf-01 (new)" in table  # nothing deployed yet: all new
    assert "Plan against nothing deployed yet (first deploy): 8 new" in table

    logs = lintas(settings, "logs", rid, "--follow").stdout
    assert "run created (hook)" in logs
    assert "[validate]" in logs and "file(s) valid" in logs
    assert "[render]" in logs and "rendered" in logs
    assert logs.strip().splitlines()[-1].endswith("run succeeded")
    assert "infra" in lintas(settings, "runs").stdout

    # Piped (not a terminal), nothing is wrapped or truncated: one event per line, full columns.
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3} ", line) for line in logs.strip().splitlines()), logs
    created = next(ln for ln in logs.splitlines() if "run created (hook)" in ln)
    assert len(created) > 80 and created.endswith("by Test Author <author@example.invalid>"), created
    piped = lintas(settings, "runs").stdout.splitlines()
    assert piped[0].split() == ["run", "repo", "ref", "sha", "author", "state", "duration", "created"]
    row = next(ln for ln in piped if rid in ln)
    assert "Test Author <author@example.invalid>" in row and mine[0]["created_at"][:19] in row, row
    shown = lintas(settings, "show", rid).stdout.splitlines()
    assert any(ln.startswith("validate ") and "succeeded" in ln for ln in shown), shown
    assert not any(ln.startswith(("┃", "│", "┏")) for ln in shown)  # no box drawing for scripts
    assert lintas(settings, "show", rid[:10], "--json").stdout == lintas(settings, "show", rid, "--json").stdout


def test_local_validate_and_plan_against_a_ref(tmp_path: Path, settings: Settings) -> None:
    repo = make_repo(tmp_path, settings)
    assert lintas(settings, "validate", str(repo)).stdout.startswith("valid:")
    tenants = repo / "fabric" / "tenants.yaml"
    tenants.write_text(
        tenants.read_text()
        + (
            "\n  - name: uat-db\n    vrf: UAT\n    vlan: 30\n    vni: 10030\n    gateway: 10.30.30.1/24\n"
            "    mtu: 9000\n    leaves: [leaf-01, leaf-02]\n"
        )
    )
    out = lintas(settings, "plan", str(repo), "--against", "HEAD").stdout
    assert "~ leaf-01 (changed)" in out and "~ leaf-02 (changed)" in out and "leaf-03" not in out
    assert "+vxlan" in out.replace(" ", "") or "10030" in out
    assert "0 new, 2 to change, 0 to remove, 6 unchanged" in out
    plan = json.loads(lintas(settings, "plan", str(repo), "--against", "HEAD", "--json").stdout)
    assert plan["targets"]["leaf-01"]["status"] == "changed"
    tenants.write_text(tenants.read_text().replace("vlan: 30", "vlan: 10"))
    bad = lintas(settings, "validate", str(repo), check=False)
    assert bad.returncode == 1
    assert "fabric/tenants.yaml:" in bad.stdout and "VLAN 10 is already used" in bad.stdout


def test_approve_reject_cancel_retry_from_the_cli(tmp_path: Path, up: Settings) -> None:
    settings = up
    repo = make_repo(tmp_path, settings)
    gated = pipeline(
        "  policy:\n    uses: t-approve\n    with: {reason: change touches both spines}\n"
        "  deploy:\n    uses: t-noop\n    needs: [policy]\n    approval: on_request\n"
    )
    sha1 = commit(repo, settings, gated, "gated change")
    push(repo, settings)
    r1 = run_id_of(repo, sha1)
    lintas(settings, "wait", r1, "--timeout", "5", check=False)
    shown = json.loads(lintas(settings, "show", r1, "--json").stdout)
    assert shown["state"] == "waiting_approval"
    assert shown["approval_reasons"] == ["change touches both spines"]
    lintas(settings, "approve", r1, "--actor", "alice", "--comment", "CAB-1234")
    assert lintas(settings, "wait", r1).stdout.strip() == "succeeded"
    assert json.loads(lintas(settings, "show", r1, "--json").stdout)["approved_by"] == "alice"

    sha2 = commit(repo, settings, {"x.yaml": "x: 2\n"}, "second gated change")
    push(repo, settings)
    r2 = run_id_of(repo, sha2)
    lintas(settings, "wait", r2, "--timeout", "5", check=False)
    lintas(settings, "reject", r2, "--actor", "bob", "--comment", "not in the window")
    assert lintas(settings, "wait", r2, check=False).stdout.strip() == "canceled"
    assert "rejected by bob: not in the window" in json.loads(lintas(settings, "show", r2, "--json").stdout)["error"]

    out = lintas(settings, "retry", r2)
    assert "retry requested" in out.stdout
    retried = None
    for _ in range(100):
        runs = json.loads(lintas(settings, "runs", "--json").stdout)
        retried = next((r for r in runs if r["source"] == "retry"), None)
        if retried:
            break
    assert retried is not None and retried["sha"] == sha2
    lintas(settings, "cancel", retried["run_id"], "--actor", "carol")
    assert lintas(settings, "wait", retried["run_id"], check=False).stdout.strip() == "canceled"

    manual = lintas(settings, "trigger", "--repo", "infra", "--ref", "main").stdout.strip()
    assert manual.startswith("r-") and manual not in (r1, r2)
    head = git(repo, "rev-parse", "HEAD", settings=settings).stdout.strip()
    lintas(settings, "wait", manual, "--timeout", "5", check=False)
    detail = json.loads(lintas(settings, "show", manual, "--json").stdout)
    assert detail["sha"] == head and detail["source"] == "manual"
