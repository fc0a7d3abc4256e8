"""Stable, documented JSON shapes for `lintas runs --json`, `lintas show --json` and the API.

These are the public contract for scripts. Fields are only ever added, never renamed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from lintas.engine.diagnostics import Diagnostic
from lintas.engine.state import Approval, Run


class RunSummary(BaseModel):
    """One line of `lintas runs`."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    repo: str
    ref: str
    sha: str
    short_sha: str
    author: str
    message: str
    source: str
    state: str
    created_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    error: str | None

    def masked(self, redact: Callable[[str], str]) -> Self:
        """This row with its free texts masked (the error, the commit message): the engine writes git's
        and the repo's words there, which the workers' masking never saw (the API and the CLI show this)."""
        error = redact(self.error) if self.error is not None else None
        return self.model_copy(update={"error": error, "message": redact(self.message)})

    @classmethod
    def of(cls, run: Run) -> RunSummary:
        return cls(
            run_id=run.run_id,
            repo=run.repo,
            ref=run.ref,
            sha=run.sha,
            short_sha=run.short_sha,
            author=run.author,
            message=run.message.splitlines()[0] if run.message else "",
            source=run.source,
            state=run.state.value,
            created_at=run.created_at,
            finished_at=run.finished_at,
            duration_s=run.duration_s,
            error=run.error,
        )


class StageView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    state: str
    on_failure: bool
    worker: str | None
    attempts: int
    deliveries: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    error: str | None
    skip_reason: str | None
    diagnostics: list[Diagnostic]
    summary: dict[str, Any]


class RunDetail(RunSummary):
    """`lintas show --json`: the run plus its stages in pipeline order."""

    pipeline: str | None
    pipeline_source: str | None
    changed_paths: list[str] | None
    approval_reasons: list[str]
    approved_by: str | None
    approvals: list[Approval]
    warnings: list[str]
    superseded_by: str | None
    retry_of: str | None
    diagnostics: list[Diagnostic]
    stages: list[StageView]

    @classmethod
    def of(cls, run: Run) -> RunDetail:
        base = RunSummary.of(run).model_dump()
        return cls(
            **base,
            pipeline=run.pipeline.name if run.pipeline else None,
            pipeline_source=run.pipeline_source,
            changed_paths=run.changed_paths,
            approval_reasons=run.approval_reasons,
            approved_by=run.approved_by,
            approvals=run.approvals,
            warnings=run.warnings,
            superseded_by=run.superseded_by,
            retry_of=run.retry_of,
            diagnostics=run.diagnostics,
            stages=[
                StageView(
                    name=s.name,
                    kind=s.kind,
                    state=s.status.value,
                    on_failure=s.on_failure,
                    worker=s.worker,
                    attempts=s.attempt,
                    deliveries=s.deliveries,
                    started_at=s.started_at,
                    finished_at=s.finished_at,
                    duration_s=s.duration_s,
                    error=s.error,
                    skip_reason=s.skip_reason,
                    diagnostics=s.diagnostics,
                    summary=s.summary,
                )
                for s in run.stages.values()
            ],
        )
