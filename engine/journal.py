"""Per-job execution journal in KV: what a job did, so redelivery never does it twice."""

from __future__ import annotations

from typing import Literal

from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from lintas.engine import subjects as S
from lintas.engine.errors import ConflictError
from lintas.engine.events import JobFinished
from lintas.engine.store import CasStore


class JournalEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str
    state: Literal["running", "done"] = "running"
    executions: int = 0  # how many times a worker began executing it
    workers: list[str] = Field(default_factory=list)
    result: JobFinished | None = None


class Journal:
    def __init__(self, kv: KeyValue) -> None:
        self._store = CasStore(kv, JournalEntry)

    async def get(self, job_id: str) -> JournalEntry | None:
        got = await self._store.get(S.journal_key(job_id))
        return got[0] if got else None

    async def begin(self, job_id: str, worker: str) -> JournalEntry:
        """Record one more execution. Returns the entry; if it is ``done`` the caller must not execute."""
        key = S.journal_key(job_id)
        for _ in range(20):
            got = await self._store.get(key)
            if got is None:
                entry = JournalEntry(job_id=job_id, executions=1, workers=[worker])
                if await self._store.create(key, entry) is not None:
                    return entry
                continue
            entry, rev = got
            if entry.state == "done":
                return entry
            entry.executions += 1
            entry.workers.append(worker)
            try:
                await self._store.update(key, entry, rev)
                return entry
            except ConflictError:
                continue
        raise ConflictError(f"journal {job_id}: too much contention")

    async def complete(self, job_id: str, result: JobFinished, *, replace: bool = False) -> JournalEntry:
        """Record the job's result. A result already recorded stands, unless ``replace`` (the
        recorded one could not be published: it is replaced by the failure that says why)."""
        key = S.journal_key(job_id)
        for _ in range(20):
            got = await self._store.get(key)
            if got is None:
                entry = JournalEntry(job_id=job_id, state="done", result=result)
                if await self._store.create(key, entry) is not None:
                    return entry
                continue
            entry, rev = got
            if entry.state == "done" and not replace:
                return entry  # a racing delivery finished first: its result stands
            entry.state = "done"
            entry.result = result
            try:
                await self._store.update(key, entry, rev)
                return entry
            except ConflictError:
                continue
        raise ConflictError(f"journal {job_id}: too much contention")
