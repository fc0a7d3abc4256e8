"""The contract between the worker runtime and stage implementations.

A stage is a class with a ``kind`` and an async ``run(ctx) -> StageResult``. It raises
:class:`~engine.errors.RetryableError` for transient trouble, and returns
``StageResult.failed(...)`` (or raises an :class:`~engine.errors.InputError`) when the
input is bad. Stages are registered through the ``lintas.stages`` entry point group.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from lintas.engine.bus import Topology
from lintas.engine.diagnostics import Diagnostic, capped
from lintas.engine.events import Job, StageFailure
from lintas.engine.gitrepo import MirrorCache, private_dirs
from lintas.engine.runlog import RunLogger
from lintas.engine.settings import Settings


class StageResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["succeeded", "failed"]
    summary: dict[str, Any] = Field(default_factory=dict)
    failure: StageFailure | None = None
    approval_reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @classmethod
    def ok(cls, summary: dict[str, Any] | None = None, **kw: Any) -> StageResult:
        return cls(outcome="succeeded", summary=summary or {}, **kw)

    @classmethod
    def failed(
        cls, message: str, diagnostics: list[Diagnostic] | None = None, summary: dict[str, Any] | None = None
    ) -> StageResult:
        return cls(
            outcome="failed",
            failure=StageFailure(message=message, diagnostics=capped(diagnostics or [])),  # bounded at the source
            summary=summary or {},
        )


@dataclass
class StageContext:
    """Everything a stage may use. Built per job by the worker runtime."""

    job: Job
    worker_id: str
    settings: Settings
    log: RunLogger
    mirror: MirrorCache
    topology: Topology
    delivery: int = 1

    @property
    def workdir(self) -> Path:
        return self.settings.work_dir / self.job.run_id / self.job.stage

    def checkout(self) -> Path:
        """A private work tree at exactly the pushed sha (blocking: call via ``asyncio.to_thread``).

        Directories are 0700 (``LINTAS_HOME/work`` too) and files 0600; the worker removes it
        when the stage ends (``LINTAS_KEEP_WORK_TREES`` keeps it, for debugging)."""
        private_dirs(self.settings.work_dir)
        private_dirs(self.workdir)
        return self.mirror.checkout(self.job.url, self.job.sha, self.workdir / "repo")

    def discard(self, paths: Iterable[str]) -> None:
        """Delete these files of the work tree now (secrets a scan blocked: kept no longer than the scan)."""
        tree = (self.workdir / "repo").resolve()
        for rel in paths:
            target = (tree / rel).resolve()
            if target.is_relative_to(tree) and target != tree and (target.is_file() or target.is_symlink()):
                target.unlink(missing_ok=True)

    def cleanup(self) -> None:
        """Remove the stage's work tree (and the run's directory once empty), unless kept for debugging."""
        if self.settings.keep_work_trees or not self.workdir.exists():
            return
        shutil.rmtree(self.workdir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.workdir.parent.rmdir()  # only if no other stage of the run has a tree there


@runtime_checkable
class Stage(Protocol):
    kind: ClassVar[str]

    async def run(self, ctx: StageContext) -> StageResult: ...


class StageFactory(Protocol):
    kind: ClassVar[str]

    def __call__(self, settings: Settings) -> Stage: ...


@runtime_checkable
class LocalStage(Protocol):
    """A stage that can also run on a working copy, without NATS (`lintas validate`, `lintas plan`)."""

    kind: ClassVar[str]

    def run_local(self, root: Path, *, against: str | None = None, repo: str | None = None) -> StageResult:
        """``repo``: the registered name of the repo this working copy is (whose deployed targets
        are the baseline); None: worked out from its remotes."""
