"""Leases in KV: one holder per target, with the KV revision as the fencing token.

JetStream accepts a late ack after AckWait even if the job went to another worker, so a
deploy must not trust "I got the message" as ownership. It takes a lease; every device
operation checks the lease's revision is still current (``assert_held``) and renews it.
An expired lease may be taken over by compare-and-set, which bumps the revision and so
fences the old holder out.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict

from lintas.engine import subjects as S
from lintas.engine.errors import LintasError, LockHeldError


class LockLostError(LintasError):
    """Our lease was taken over (it expired): stop touching the target."""


class Lease(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    owner: str
    revision: int  # fencing token: strictly increases with every acquisition
    expires_at: float


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str
    expires_at: float


class LeaseLocks:
    def __init__(self, kv: KeyValue, *, ttl_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self._kv = kv
        self._ttl = ttl_s
        self._clock = clock

    async def acquire(self, target: str, owner: str) -> Lease:
        key = S.lock_key(target)
        expires = self._clock() + self._ttl
        doc = _Doc(owner=owner, expires_at=expires).model_dump_json().encode()
        try:
            rev = await self._kv.create(key, doc)
            return Lease(target=target, owner=owner, revision=rev, expires_at=expires)
        except KeyWrongLastSequenceError:
            pass
        entry = await self._kv.get(key)
        held = _Doc.model_validate_json(entry.value or b"{}")
        if held.owner != owner and held.expires_at > self._clock():
            raise LockHeldError(f"{target} is locked by {held.owner} for {held.expires_at - self._clock():.0f}s more")
        try:  # expired (or ours): take it over by compare-and-set, which fences the old holder
            rev = await self._kv.update(key, doc, last=entry.revision)
        except KeyWrongLastSequenceError as exc:
            raise LockHeldError(f"{target}: lost the race to take over an expired lock") from exc
        return Lease(target=target, owner=owner, revision=rev, expires_at=expires)

    async def renew(self, lease: Lease) -> Lease:
        expires = self._clock() + self._ttl
        doc = _Doc(owner=lease.owner, expires_at=expires).model_dump_json().encode()
        try:
            rev = await self._kv.update(S.lock_key(lease.target), doc, last=lease.revision)
        except KeyWrongLastSequenceError as exc:
            raise LockLostError(f"lease on {lease.target} was taken over") from exc
        return lease.model_copy(update={"revision": rev, "expires_at": expires})

    async def assert_held(self, lease: Lease) -> None:
        """Fencing check before touching the target."""
        try:
            entry = await self._kv.get(S.lock_key(lease.target))
        except KeyNotFoundError as exc:
            raise LockLostError(f"lease on {lease.target} is gone") from exc
        if entry.revision != lease.revision:
            raise LockLostError(f"lease on {lease.target} was taken over (revision {entry.revision})")

    async def release(self, lease: Lease) -> None:
        try:
            await self._kv.delete(S.lock_key(lease.target), last=lease.revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            pass  # already taken over or gone: nothing of ours to release
        except BadRequestError as exc:  # delete() reports a CAS miss as a raw API error
            if exc.err_code != 10071:
                raise

    @asynccontextmanager
    async def hold(self, target: str, owner: str) -> AsyncIterator[Lease]:
        lease = await self.acquire(target, owner)
        try:
            yield lease
        finally:
            await self.release(lease)
