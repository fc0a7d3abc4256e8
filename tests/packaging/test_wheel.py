"""The wheel is the product: built from this tree, installed into a fresh venv, and run from an
empty directory with no checkout on the path, every command works (init, validate, plan, policy
test, up with the embedded nats-server and a push through the pipeline, the API, the lab).

Slow (it builds the wheel and installs its dependencies from pip's cache or index), so it is in
the integration lane."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lintas.engine.natsd import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

PLAIN_PIPELINE = """version: 1
name: plain
stages:
  validate: {timeout: 5m}
  render: {needs: [validate]}
  policy: {needs: [render]}
  secscan: {needs: [validate]}
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    empty: Path  # the working directory: nothing of Lintas in it
    env: dict[str, str]

    def lintas(self, *args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "lintas"), *args],
            cwd=cwd or self.empty,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    out = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert out.returncode == 0, f"{args}: {out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(ROOT), cwd=base)
    (wheel,) = dist.glob("lintas-*.whl")
    venv = base / "venv"
    _run(sys.executable, "-m", "venv", str(venv), cwd=base)
    _run(str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(wheel), cwd=base)
    empty = base / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINTAS_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        LINTAS_HOME=str(base / "home"),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        GIT_AUTHOR_NAME="Wheel Tester",
        GIT_AUTHOR_EMAIL="wheel@example.invalid",
        GIT_COMMITTER_NAME="Wheel Tester",
        GIT_COMMITTER_EMAIL="wheel@example.invalid",
    )
    return Installed(wheel, venv, empty, env)


def test_the_wheel_installs_one_import_package_with_its_data(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"lintas", "napalm_frr.py", "lintas-0.1.0.dist-info"}
    for data in (
        "lintas/pipelines/default.yaml",
        "lintas/policies/bgp_auth.rego",
        "lintas/template/fabric/fabric.yaml",
        "lintas/engine/api/static/index.html",
        "lintas/workers/render/templates/frr/frr.conf.j2",
        "lintas/engine/py.typed",
    ):
        assert data in names, data
    metadata = zipfile.ZipFile(installed.wheel).read("lintas-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    where = subprocess.run(
        [
            str(installed.venv / "bin" / "python"),
            "-c",
            "import lintas.engine, napalm, napalm_frr; print(lintas.engine.__file__); "
            "print(napalm.get_network_driver('frr').__name__)",
        ],
        cwd=installed.empty,
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    )
    path, driver = where.stdout.split()
    assert path.startswith(str(installed.venv)) and driver == "FrrDriver"


def test_every_command_runs_from_an_empty_directory(installed: Installed) -> None:
    version = installed.lintas("--version")
    assert version.returncode == 0 and version.stdout.strip() == "lintas 0.1.0"
    init = installed.lintas("init", "demo")
    assert init.returncode == 0, init.stderr
    demo = installed.empty / "demo"
    assert (demo / "fabric" / "fabric.yaml").is_file() and (
        installed.empty / "demo.git" / "hooks" / "post-receive"
    ).is_file()
    valid = installed.lintas("validate", cwd=demo)
    assert valid.returncode == 0 and valid.stdout.startswith("valid: "), valid.stdout + valid.stderr
    plan = installed.lintas("plan", "--json", cwd=demo)
    assert plan.returncode == 0, plan.stderr
    assert len(json.loads(plan.stdout)["targets"]) == 8
    tests = installed.lintas("policy", "test", ".", "--json", cwd=demo)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    out = json.loads(tests.stdout)
    assert out["ok"] and out["failed"] == 0 and out["passed"] >= 40
    assert {t["origin"] for t in out["tests"]} == {"built-in", "repo"}
    doctor = installed.lintas("doctor")
    assert "nats-server" in doctor.stdout and "Traceback" not in doctor.stdout + doctor.stderr


@pytest.fixture
def up(installed: Installed, tmp_path: Path) -> Iterator[tuple[Installed, str]]:
    pipeline = tmp_path / "plain.yaml"
    pipeline.write_text(PLAIN_PIPELINE)
    api = f"127.0.0.1:{free_port()}"
    installed.env.update(
        LINTAS_DEFAULT_PIPELINE=str(pipeline),
        LINTAS_API_ADDR=api,
        LINTAS_NATS_PORT=str(free_port()),
        LINTAS_TICK_S="0.2",
    )
    started = installed.lintas("up", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://{api}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "lintas up never became ready"
            time.sleep(0.3)
        yield installed, f"http://{api}"
    finally:
        down = installed.lintas("down")
        assert "stopped" in down.stdout, down.stdout + down.stderr


def test_up_takes_a_push_through_the_pipeline_and_the_api_shows_it(up: tuple[Installed, str]) -> None:
    installed, api = up
    demo = installed.empty / "demo"
    if not demo.exists():
        assert installed.lintas("init", "demo").returncode == 0
    tenants = demo / "fabric" / "tenants.yaml"
    tenants.write_text(tenants.read_text() + "\n")
    _run("git", "commit", "-q", "-am", "wheel: a push", cwd=demo, env=installed.env)
    pushed = subprocess.run(
        ["git", "push", "-q", "origin", "HEAD:main"],
        cwd=demo,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "published 1 event(s)" in pushed.stderr, pushed.stderr
    deadline = time.monotonic() + 60
    runs: list[dict[str, object]] = []
    while not runs:  # `lintas init`'s own first push was spooled (no NATS then) and may be a run too
        runs = [r for r in json.loads(installed.lintas("runs", "--json").stdout) if r["message"] == "wheel: a push"]
        assert time.monotonic() < deadline, "the push never became a run"
        time.sleep(0.5)
    (run,) = runs
    waited = installed.lintas("wait", str(run["run_id"]), "--timeout", "120")
    assert waited.stdout.strip() == "succeeded", waited.stdout + waited.stderr
    detail = json.loads(installed.lintas("show", str(run["run_id"]), "--json").stdout)
    assert [s["name"] for s in detail["stages"]] == ["validate", "render", "policy", "secscan"]
    health = httpx.get(f"{api}/healthz", timeout=5)
    assert health.status_code == 200
    page = httpx.get(f"{api}/ui/", timeout=5)
    assert page.status_code == 200 and "<html" in page.text.lower()  # the dashboard ships in the wheel


def test_lab_up_and_down_from_the_wheel(installed: Installed) -> None:
    """The lab's code and data (the template, FRR and sshd set-up) come from the wheel too."""
    demo = installed.empty / "demo"
    if not demo.exists():
        assert installed.lintas("init", "demo").returncode == 0
    up = installed.lintas("lab", "up", "--repo", str(demo), timeout=600)
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        status = installed.lintas("lab", "status", "--json")
        assert status.returncode == 0, status.stderr
        state = json.loads(status.stdout)
        assert "leaf-01" in json.dumps(state) and "spine-01" in json.dumps(state)
    finally:
        down = installed.lintas("lab", "down", timeout=300)
        assert down.returncode == 0, down.stdout[-2000:] + down.stderr[-2000:]
