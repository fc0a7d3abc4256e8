"""Typed compare-and-set stores on JetStream KV."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from engine import subjects as S
from engine.errors import ConflictError
from engine.state import BranchQueue, Run

M = TypeVar("M", bound=BaseModel)


class CasStore(Generic[M]):
    """Documents of one model type in one bucket; writes only by revision."""

    def __init__(self, kv: KeyValue, model: type[M]) -> None:
        self._kv = kv
        self._model = model

    async def get(self, key: str) -> tuple[M, int] | None:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return self._model.model_validate_json(entry.value), entry.revision

    async def create(self, key: str, doc: M) -> int | None:
        """Create if absent. Returns the revision, or None if the key already exists."""
        try:
            return await self._kv.create(key, doc.model_dump_json(by_alias=True).encode())
        except KeyWrongLastSequenceError:
            return None

    async def update(self, key: str, doc: M, revision: int) -> int:
        try:
            return await self._kv.update(key, doc.model_dump_json(by_alias=True).encode(), last=revision)
        except KeyWrongLastSequenceError as exc:
            raise ConflictError(f"{key}: revision {revision} is stale") from exc

    async def keys(self) -> list[str]:
        """Every key, exactly. ``KeyValue.keys()`` is a watcher that can stop early while
        keys are being written, so this reads the bucket stream's per-subject state."""
        kv: Any = self._kv  # nats-py exposes no public handle on the bucket's stream
        prefix: str = kv._pre
        info = await kv._js.stream_info(kv._stream, subjects_filter=f"{prefix}>")
        subjects = info.state.subjects or {}
        return sorted(subj[len(prefix):] for subj in subjects)

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
