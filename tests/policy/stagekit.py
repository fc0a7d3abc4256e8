"""Run one stage job against a real nats-server and a real git repo, without the engine.

Shared by the policy and secscan stage tests: builds the StageContext a worker would
build, and records every log line the stage publishes.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
from nats.aio.client import Client
from nats.aio.msg import Msg

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.bus import Topology, connect, ensure_topology
from lintas.engine.events import Job, LogLine
from lintas.engine.gitrepo import MirrorCache
from lintas.engine.runlog import RunLogger
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "gitops-repo-template"


def git_repo(
    path: Path, files: dict[str, str] | None = None, *, message: str = "change", template: bool = True
) -> tuple[Path, list[str]]:
    """A git repo at ``path`` with the template committed, then ``files`` in a second commit.
    Returns (path, [shas])."""
    if template:
        shutil.copytree(TEMPLATE, path)
    else:
        path.mkdir(parents=True)
    repo = git.Repo.init(path, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Test Author")
        cw.set_value("user", "email", "author@example.invalid")
    repo.git.add(A=True)
    repo.git.commit("--allow-empty", m="import the template")
    shas = [repo.head.commit.hexsha]
    if files:
        for rel, text in files.items():
            p = path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        repo.git.add(A=True)
        repo.git.commit(m=message)
        shas.append(repo.head.commit.hexsha)
    repo.close()
    return path, shas


@dataclass
class Harness:
    nc: Client
    topo: Topology
    settings: Settings
    logs: list[LogLine] = field(default_factory=list)

    def context(
        self,
        url: Path,
        sha: str,
        *,
        stage: str,
        run_id: str = "r-test",
        before: str | None = None,
        options: dict[str, Any] | None = None,
        inputs: dict[str, dict[str, Any]] | None = None,
    ) -> StageContext:
        job = Job(
            job_id=Job.make_id(run_id, stage, 1),
            run_id=run_id,
            stage=stage,
            kind=stage,
            attempt=1,
            repo="infra",
            url=str(url),
            ref="refs/heads/main",
            sha=sha,
            before=before,
            options=options or {},
            timeout_s=60,
            inputs=inputs or {},
        )
        log = RunLogger(self.nc, run_id, stage=stage, worker="w-test")
        return StageContext(job, "w-test", self.settings, log, MirrorCache(self.settings.cache_dir), self.topo)

    async def doc(self, name: str) -> bytes | None:
        return await NatsArtifactStore(self.topo.artifacts).get_doc(name)

    async def blob(self, blob_id: str) -> bytes | None:
        return await NatsArtifactStore(self.topo.artifacts).get_blob(blob_id)

    async def flush(self) -> None:
        """Wait until the log lines published so far have been received."""
        await self.nc.flush()
        await asyncio.sleep(0.2)


@asynccontextmanager
async def harness(settings: Settings, run_id: str = "r-test") -> AsyncIterator[Harness]:
    assert settings.nats_url
    nc = await connect(settings, settings.nats_url, name="stage-test")
    try:
        topo = await ensure_topology(nc.jetstream(), settings)
        h = Harness(nc, topo, settings)

        async def on_log(msg: Msg) -> None:
            h.logs.append(LogLine.model_validate_json(msg.data))

        await nc.subscribe(S.run_log(run_id), cb=on_log)
        yield h
    finally:
        await nc.close()
