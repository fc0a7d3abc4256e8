"""Helpers for end-to-end tests: real git repos with the real hook, real NATS."""

from __future__ import annotations

import asyncio
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from lintas.engine.bus import Topology
from lintas.engine.events import PushEvent, run_id_for
from lintas.engine.infra_repo import TEMPLATE_DIR, init_infra_repo
from lintas.engine.repos import RepoEntry, RepoRegistry
from lintas.engine.settings import Settings
from lintas.engine.state import Run
from lintas.engine.store import RunStore
from tests.conftest import subprocess_env


def git(repo: Path, *args: str, settings: Settings, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=repo, env=subprocess_env(settings), capture_output=True, text=True, check=check, timeout=60
    )


@functools.cache
def template_without_deploy() -> Path:
    """The template with a pipeline that stops before the twin and deploy: for tests without a lab.

    (The template's own pipeline builds twins and deploys to the fabric; the tests in tests/deploy run it.)"""
    dst = Path(tempfile.mkdtemp(prefix="lintas-template-")) / "template"
    shutil.copytree(TEMPLATE_DIR, dst)
    pipe = dst / ".lintas" / "pipeline.yaml"
    text = pipe.read_text()
    pipe.write_text(text[: min(text.index(s) for s in ("  twin:", "  deploy:"))])
    return dst


def make_repo(tmp_path: Path, settings: Settings, name: str = "infra") -> Path:
    bare, work = init_infra_repo(tmp_path / name, settings.home, template=template_without_deploy())
    RepoRegistry(settings.home).add(RepoEntry(name=name, url=str(bare)))
    return work


def commit(repo: Path, settings: Settings, files: dict[str, str], message: str = "change") -> str:
    for rel, text in files.items():
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    git(repo, "add", "-A", settings=settings)
    git(repo, "commit", "-q", "-m", message, settings=settings)
    return git(repo, "rev-parse", "HEAD", settings=settings).stdout.strip()


def push(repo: Path, settings: Settings) -> subprocess.CompletedProcess[str]:
    return git(repo, "push", "origin", "HEAD:main", settings=settings)


def run_id_of(repo: Path, sha: str, ref: str = "refs/heads/main") -> str:
    return run_id_for(PushEvent.dedup_key(repo.name, ref, sha))


async def wait_run(topo: Topology, run_id: str, *, timeout: float = 30.0, states: set[str] | None = None) -> Run:
    """Wait until the run is terminal (or in one of ``states``); return it."""
    store = RunStore(topo.runs)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Run | None = None
    while loop.time() < deadline:
        got = await store.get(RunStore.key(run_id))
        if got is not None:
            last = got[0]
            if (states and last.state.value in states) or (not states and last.state.terminal):
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} not done in {timeout}s; last state: {last.state if last else 'absent'}")


def pipeline(stages_yaml: str) -> dict[str, str]:
    return {".lintas/pipeline.yaml": f"version: 1\nname: test\nstages:\n{stages_yaml}"}
