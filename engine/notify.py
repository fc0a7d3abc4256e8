"""Compact run-change notices on ``lintas.notify.<run>`` for the API, SSE and dashboards."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from lintas.engine.state import Run


class RunNotice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    revision: int
    repo: str
    ref: str
    sha: str
    state: str
    stages: dict[str, str]
    updated_at: datetime

    @classmethod
    def of(cls, run: Run, revision: int) -> RunNotice:
        return cls(
            run_id=run.run_id,
            revision=revision,
            repo=run.repo,
            ref=run.ref,
            sha=run.sha,
            state=run.state.value,
            stages={n: s.status.value for n, s in run.stages.items()},
            updated_at=run.updated_at,
        )
