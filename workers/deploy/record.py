"""The deployment record of a run: what deploy changed, on which device, and how it ended.

Written to the artifact store (``deploy/<run>.json``) *before* the first commit and after
every wave, so that verify, rollback, a restarted engine and the API all see exactly
which devices carry an unconfirmed commit of this run, and their last-known-good state.
A redelivered deploy job resumes from it (:mod:`workers.deploy.deploy`); what it cannot know
(a commit made after its last write) is read back from the devices: each commit's
metadata on the device names the run that made it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lintas.engine import subjects as S
from lintas.engine.artifacts import ArtifactStore
from lintas.workers.deploy.outcome import TargetError

TargetStatus = Literal[
    "pending",  # in the plan, not reached yet
    "unchanged",  # already at the desired config: not touched
    "committed",  # committed with a device-side revert timer, awaiting confirmation
    "confirmed",  # verify passed and confirmed the commit
    "failed",  # the commit failed (the driver restored the device, or its timer will)
    "skipped",  # not attempted: an earlier wave failed, or no driver for this kind
    "reverted",  # the device restored itself (timer) before confirmation
    "rolled_back",  # rollback restored the last-known-good state
    "rollback_failed",  # NEEDS ATTENTION: rollback could not restore it
]


def now() -> datetime:
    return datetime.now(UTC)


class TargetResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str
    kind: Literal["device", "host"] = "device"
    role: str = ""
    wave: int | None = None
    status: TargetStatus = "pending"
    changed: bool = False
    diff: str = ""
    error: str | None = None
    failure: TargetError | None = None  # the error's type and disposition (retry / finish), when one was raised
    checkpoint: str | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)  # what this run deploys
    previous: dict[str, str] | None = None  # last-known-good (TargetStore), None on first deploy
    previous_commit: str | None = None
    duration_s: float = 0.0
    committed_at: datetime | None = None
    revert_in_s: int | None = None  # the device-side timer armed by the commit

    def brief(self) -> dict[str, object]:
        """What goes on the run (the full diff stays in the record)."""
        return {
            "target": self.target,
            "kind": self.kind,
            "role": self.role,
            "wave": self.wave,
            "status": self.status,
            "changed": self.changed,
            "error": self.error,
            "diff_lines": self.diff.count("\n"),
            "duration_s": round(self.duration_s, 3),
        } | ({"failure": self.failure.model_dump()} if self.failure is not None else {})


class DeployRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    repo: str
    sha: str
    revert_in_s: int
    allow_deletions: bool = False  # hosts: domains removed from the repo may be undefined
    attempt: int = 1  # the deploy stage's attempt that wrote it (a redelivery of it resumes it)
    started_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None
    waves: list[list[str]] = Field(default_factory=list)
    targets: dict[str, TargetResult] = Field(default_factory=dict)

    @property
    def rolled_out(self) -> list[str]:
        """Every target placed in a wave: compared with its candidate, leased by the run."""
        return [t for wave in self.waves for t in wave]

    def with_status(self, *statuses: TargetStatus) -> list[str]:
        return sorted(t for t, r in self.targets.items() if r.status in statuses)


async def load_record(store: ArtifactStore, run_id: str) -> DeployRecord | None:
    raw = await store.get_doc(S.deploy_record_doc(run_id))
    return DeployRecord.model_validate_json(raw) if raw else None


async def save_record(store: ArtifactStore, record: DeployRecord) -> None:
    await store.put_doc(S.deploy_record_doc(record.run_id), record.model_dump_json().encode())
