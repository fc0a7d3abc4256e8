"""Typed compare-and-set stores on JetStream KV."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from lintas.engine import subjects as S
from lintas.engine.bus import DEFAULT_RETRY_S, is_transient, retrying
from lintas.engine.errors import ConflictError
from lintas.engine.state import BranchQueue, Run

M = TypeVar("M", bound=BaseModel)


class CasStore(Generic[M]):
    """Documents of one model type in one bucket; writes only by revision.

    Across a node loss or a leader election a write may time out *after* the cluster stored
    it. A write is retried with the same compare-and-set revision, and an unanswered one is
    settled by reading the key back: our exact bytes at a newer revision mean it landed. A
    write refused before any attempt went unanswered is another writer's win, whatever the
    bytes (two deliveries of one job on one worker write the same journal entry).
    Nothing is reported written that the cluster did not acknowledge."""

    def __init__(self, kv: KeyValue, model: type[M], *, retry_s: float = DEFAULT_RETRY_S) -> None:
        self._kv = kv
        self._model = model
        self._retry_s = retry_s

    async def _raw(self, key: str) -> tuple[bytes, int] | None:
        async def read() -> tuple[bytes, int] | None:
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                return None
            if entry.value is None or entry.revision is None:
                return None
            return entry.value, entry.revision

        return await retrying(read, deadline_s=self._retry_s, what=f"kv get {key}")

    async def get(self, key: str) -> tuple[M, int] | None:
        got = await self._raw(key)
        return None if got is None else (self._model.model_validate_json(got[0]), got[1])

    async def _write(self, key: str, data: bytes, last: int) -> int | None:
        """CAS write expecting revision ``last`` (0: absent). Returns the new revision, or None
        when another writer got there first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_s
        delay = 0.05
        unanswered = False  # an attempt went out and got no answer: it may have landed
        while True:
            try:
                # keys are built from subject tokens (engine/subjects.py): not checked again per write
                if last == 0:
                    return await self._kv.create(key, data, validate_keys=False)
                return await self._kv.update(key, data, last=last, validate_keys=False)
            except KeyWrongLastSequenceError:
                if not unanswered:
                    return None  # refused, and none of ours can have landed: another writer's
                # someone wrote it, perhaps our own unanswered attempt: settled below
            except Exception as exc:
                if not is_transient(exc) or loop.time() + delay >= deadline:
                    raise
                unanswered = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            current = await self._raw(key)
            if current is None:
                if last == 0:
                    continue  # still absent: our create did not land, try again
                return None  # deleted under us
            value, rev = current
            if rev == last:
                continue  # our write did not land: try again with the same revision
            return rev if value == data else None

    async def create(self, key: str, doc: M) -> int | None:
        """Create if absent. Returns the revision, or None if the key already exists."""
        return await self._write(key, doc.model_dump_json(by_alias=True).encode(), 0)

    async def update(self, key: str, doc: M, revision: int) -> int:
        new_rev = await self._write(key, doc.model_dump_json(by_alias=True).encode(), revision)
        if new_rev is None:
            raise ConflictError(f"{key}: revision {revision} is stale")
        return new_rev

    async def keys(self) -> list[str]:
        """Every key, exactly. ``KeyValue.keys()`` is a watcher that can stop early while
        keys are being written, so this reads the bucket stream's per-subject state."""
        kv: Any = self._kv  # nats-py exposes no public handle on the bucket's stream
        prefix: str = kv._pre
        info = await retrying(
            lambda: kv._js.stream_info(kv._stream, subjects_filter=f"{prefix}>"),
            deadline_s=self._retry_s,
            what="kv keys",
        )
        subjects = info.state.subjects or {}
        return sorted(subj[len(prefix) :] for subj in subjects)

    async def all(self) -> AsyncIterator[tuple[M, int]]:
        for key in await self.keys():
            got = await self.get(key)
            if got is not None:
                yield got


class RunStore(CasStore[Run]):
    def __init__(self, kv: KeyValue) -> None:
        super().__init__(kv, Run)

    @staticmethod
    def key(run_id: str) -> str:
        return S.run_key(run_id)


class BranchStore(CasStore[BranchQueue]):
    def __init__(self, kv: KeyValue) -> None:
        super().__init__(kv, BranchQueue)

    @staticmethod
    def key(repo: str, ref: str) -> str:
        return S.branch_key(repo, ref)
