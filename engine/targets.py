"""What was last deployed to each target (device or host): the plan's baseline and
drift detection's reference. Written by verify after a confirmed deploy, and marked
by drift remediation (``drift``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from lintas.engine import subjects as S
from lintas.engine.store import CasStore


class TargetState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str
    kind: Literal["device", "host"]
    repo: str
    commit: str
    run_id: str
    artifacts: dict[str, str] = Field(default_factory=dict)  # artifact name -> content id
    deployed_at: datetime
    # set by drift remediation: the target no longer runs these artifacts (what differs);
    # the next plan re-applies it even though the artifacts did not change
    drift: list[str] = Field(default_factory=list)
    # the running state right after the deploy was confirmed (drift: a cheap "unchanged" test)
    fingerprint: str | None = None


class TargetStore:
    def __init__(self, kv: KeyValue) -> None:
        self._store = CasStore(kv, TargetState)
        self._kv = kv
        self._commits: tuple[int, dict[str, set[str]]] | None = None  # bucket's last sequence, repo -> commits

    async def deployed_commits(self, repo: str) -> list[str]:
        """The commits deployed from ``repo`` (engine/freshness.py). Every target is read again
        only when the bucket changed since the last call: one stream lookup otherwise."""
        kv: Any = self._kv  # nats-py exposes no public handle on the bucket's stream
        seq = int((await kv._js.stream_info(kv._stream)).state.last_seq)
        if self._commits is None or self._commits[0] != seq:
            by_repo: dict[str, set[str]] = {}
            for t in (await self.all()).values():
                by_repo.setdefault(t.repo, set()).add(t.commit)
            self._commits = (seq, by_repo)
        return sorted(self._commits[1].get(repo, ()))

    async def get(self, target: str) -> TargetState | None:
        got = await self._store.get(S.target_key(target))
        return got[0] if got else None

    async def put(self, state: TargetState) -> None:
        key = S.target_key(state.target)
        got = await self._store.get(key)
        if got is None:
            if await self._store.create(key, state) is not None:
                return
            got = await self._store.get(key)
            assert got is not None
        await self._store.update(key, state, got[1])

    async def all(self) -> dict[str, TargetState]:
        return {t.target: t async for t, _rev in self._store.all()}
