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
        return (await self.begin_at(job_id, worker))[0]

    async def begin_at(self, job_id: str, worker: str) -> tuple[JournalEntry, int]:
        """:meth:`begin`, with the entry's revision (for :meth:`complete`'s first write).

        A job is almost always new: the entry is created first, and read only when it exists."""
        key = S.journal_key(job_id)
        fresh = JournalEntry(job_id=job_id, executions=1, workers=[worker])
        rev = await self._store.create(key, fresh)
        if rev is not None:
            return fresh, rev
        for _ in range(20):
            got = await self._store.get(key)
            if got is None:
                rev = await self._store.create(key, fresh)
                if rev is not None:
                    return fresh, rev
                continue
            entry, rev = got
            if entry.state == "done":
                return entry, rev
            entry.executions += 1
            entry.workers.append(worker)
            try:
                return entry, await self._store.update(key, entry, rev)
            except ConflictError:
                continue
        raise ConflictError(f"journal {job_id}: too much contention")

    async def complete(
        self, job_id: str, result: JobFinished, *, replace: bool = False, began: tuple[JournalEntry, int] | None = None
    ) -> JournalEntry:
        """Record the job's result. A result already recorded stands, unless ``replace`` (the
        recorded one could not be published: it is replaced by the failure that says why).

        ``began``: the entry and revision :meth:`begin_at` returned. The result is written at that
        revision without a read first; if anything wrote the entry since (another delivery
        began, or finished), the write loses and the entry is read and decided again."""
        key = S.journal_key(job_id)
        if began is not None and began[0].state == "running":
            entry = began[0].model_copy(update={"state": "done", "result": result})
            try:
                await self._store.update(key, entry, began[1])
                return entry
            except ConflictError:
                pass
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
