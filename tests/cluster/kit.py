"""Helpers for the fault drills: `lintas` processes with the cluster settings, a repo whose
pushes fire the real post-receive hook, and waits on the runs in KV."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

from lintas.engine import subjects as S
from lintas.engine.bus import Topology
from lintas.engine.cluster import LocalCluster
from lintas.engine.events import PushEvent, run_id_for
from lintas.engine.infra_repo import install_hook
from lintas.engine.journal import Journal, JournalEntry
from lintas.engine.settings import Settings
from lintas.engine.state import Run
from lintas.engine.store import RunStore
from tests.conftest import subprocess_env
from tests.integration.procs import Proc


def cluster_env(settings: Settings) -> dict[str, str]:
    env = subprocess_env(settings)
    env.update(
        LINTAS_STREAMS__REPLICAS=str(settings.streams.replicas),
        LINTAS_ENGINE_RESCAN_S=str(settings.engine_rescan_s),
        LINTAS_ENGINE_ACK_WAIT_S=str(settings.engine_ack_wait_s),
        LINTAS_NATS_RETRY_S=str(settings.nats_retry_s),
        LINTAS_EMIT_TIMEOUT_S=str(settings.emit_timeout_s),
        LINTAS_LOG_LEVEL="info",
    )
    return env


class ClusterProc(Proc):
    def start(self) -> ClusterProc:
        fh = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        self.p = subprocess.Popen(self.args, env=cluster_env(self.settings), stdout=fh, stderr=subprocess.STDOUT)
        fh.close()
        return self

    def stop_signal(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def cont(self) -> None:
        if self.p is not None and self.p.poll() is None:
            os.kill(self.pid, signal.SIGCONT)


def git(cwd: Path, settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=cluster_env(settings), capture_output=True, text=True, check=True, timeout=timeout
    )


def make_repo(tmp: Path, settings: Settings, pipeline_yaml: str, name: str = "drill") -> tuple[Path, str]:
    """A bare repo with the real hook, and a clone with one commit holding the pipeline.
    Nothing is pushed yet. Returns (clone, sha)."""
    bare = tmp / f"{name}.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    install_hook(bare, name, settings.home)
    work = tmp / name
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / ".lintas").mkdir()
    (work / ".lintas" / "pipeline.yaml").write_text(pipeline_yaml)
    git(work, settings, "add", "-A")
    git(work, settings, "commit", "-q", "-m", "pipeline")
    git(work, settings, "remote", "add", "origin", str(bare))
    return work, git(work, settings, "rev-parse", "HEAD").stdout.strip()


def push_branches(work: Path, settings: Settings, branches: list[str]) -> subprocess.CompletedProcess[str]:
    """One `git push` creating every branch at HEAD: the hook gets one line per branch."""
    return git(work, settings, "push", "-q", "origin", *(f"HEAD:refs/heads/{b}" for b in branches))


def run_id(repo: str, branch: str, sha: str) -> str:
    return run_id_for(PushEvent.dedup_key(repo, f"refs/heads/{branch}", sha))


async def runs_by_id(topo: Topology) -> dict[str, Run]:
    store = RunStore(topo.runs)
    out: dict[str, Run] = {}
    async for run, _ in store.all():
        out[run.run_id] = run
    return out


async def wait_terminal(topo: Topology, run_ids: set[str], timeout: float) -> dict[str, Run]:
    """Wait until every run exists and is terminal; fail with what is missing or stuck."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    runs: dict[str, Run] = {}
    while loop.time() < deadline:
        runs = await runs_by_id(topo)
        if all(rid in runs and runs[rid].state.terminal for rid in run_ids):
            return runs
        await asyncio.sleep(0.5)
    missing = sorted(rid for rid in run_ids if rid not in runs)
    stuck = sorted(
        f"{rid}:{runs[rid].state}:" + ",".join(f"{n}={r.status}/{r.attempt}" for n, r in runs[rid].stages.items())
        for rid in run_ids
        if rid in runs and not runs[rid].state.terminal
    )
    raise AssertionError(
        f"after {timeout}s: {len(missing)} runs missing {missing[:5]}, {len(stuck)} not terminal {stuck[:5]}"
    )


async def journal_of(topo: Topology, run: Run) -> dict[str, JournalEntry | None]:
    j = Journal(topo.journal)
    return {name: await j.get(rec.job_id) if rec.job_id else None for name, rec in run.stages.items()}


def marks(settings: Settings, run_id: str, stage: str) -> list[str]:
    f = settings.home / "marks" / f"{run_id}.{stage}"
    return f.read_text().splitlines() if f.exists() else []


async def stream_leader(topo: Topology, cluster: LocalCluster, stream: str) -> str:
    info = await topo.js.stream_info(stream)
    assert info.cluster is not None and info.cluster.leader, f"{stream} has no leader"
    return info.cluster.leader


def noop_pipeline(n: int, kind: str = "t-noop", extra: str = "") -> str:
    lines = ["version: 1", "name: drill", "stages:"]
    for i in range(1, n + 1):
        lines.append(
            f"  s{i}:\n    uses: {kind}\n    with: {{mark: true{extra}}}"
            + (f"\n    needs: [s{i - 1}]" if i > 1 else "")
        )
    return "\n".join(lines) + "\n"


JOBS = S.JOBS_STREAM
EVENTS = S.EVENTS_STREAM
