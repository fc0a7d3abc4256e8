"""An in-memory index of runs for the API process, fed by a watch on the runs KV bucket.

Listing 10,000 runs from KV on every request means 10,000 reads; the index answers
from memory instead (sorted newest first by ``(created_at, run_id)``), and also feeds
the run and stage metrics. It is eventually consistent with KV (a watch delivers each
update within milliseconds) and is rebuilt from KV whenever the API process starts.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from nats.js.kv import KeyValue
from pydantic import ValidationError

from lintas.engine.state import Run
from lintas.engine.views import RunSummary

log = structlog.get_logger("lintas.api.index")

SortKey = tuple[datetime, str]
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class BadCursor(ValueError):
    pass


def encode_cursor(key: SortKey) -> str:
    return base64.urlsafe_b64encode(f"{key[0].isoformat()}|{key[1]}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, _, run_id = raw.partition("|")
        when = datetime.fromisoformat(ts)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("invalid cursor") from exc
    if not run_id or when.tzinfo is None:
        raise BadCursor("invalid cursor")
    return when, run_id


@dataclass
class StageStats:
    """Histogram of finished stage durations and finished-stage counts, per stage kind."""

    buckets: dict[str, list[int]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    finished: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, status) -> n
    _seen: set[tuple[str, str, int]] = field(default_factory=set)

    def observe(self, run: Run) -> None:
        for rec in run.stages.values():
            if not rec.status.done or rec.attempt == 0:
                continue
            key = (run.run_id, rec.name, rec.attempt)
            if key in self._seen:
                continue
            self._seen.add(key)
            self.finished[(rec.kind, rec.status.value)] += 1
            dur = rec.duration_s
            if dur is None:
                continue
            b = self.buckets.setdefault(rec.kind, [0] * len(STAGE_BUCKETS))
            for i, le in enumerate(STAGE_BUCKETS):
                if dur <= le:
                    b[i] += 1
            self.sums[rec.kind] = self.sums.get(rec.kind, 0.0) + dur
            self.counts[rec.kind] += 1


class RunIndex:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._by_id: dict[str, RunSummary] = {}
        self._keys: list[SortKey] = []  # ascending; iterate reversed for newest first
        self.stages = StageStats()
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open the watch before returning, so stop() always finds it (no orphaned subscription)."""
        if self._task is None:
            self._watcher = await self._kv.watchall()
            self._task = asyncio.create_task(self._follow(), name="lintas-api-run-index")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self._close_watch()

    async def _close_watch(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        await self.start()
        async with asyncio.timeout(timeout_s):
            await self.ready.wait()

    async def _follow(self) -> None:
        delay = 0.2
        while True:
            try:
                if self._watcher is None:
                    self._watcher = await self._kv.watchall()
                async for entry in self._watcher:
                    if entry is None:
                        self.ready.set()
                        continue
                    self._apply(entry.key, entry.value, entry.operation)
                    delay = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost watch is restarted with backoff
                log.warning("run index watch failed; restarting", error=repr(exc))
            await self._close_watch()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # ------------------------------------------------------------------ updates
    def _apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        if operation in ("DEL", "PURGE") or not value:
            self._remove(key.removeprefix("run."))
            return
        try:
            run = Run.model_validate_json(value)
        except ValidationError as exc:
            log.warning("unreadable run document skipped", key=key, error=str(exc)[:200])
            return
        self.put(run)

    def put(self, run: Run) -> None:
        summary = RunSummary.of(run)
        old = self._by_id.get(run.run_id)
        if old is None:
            bisect.insort(self._keys, (summary.created_at, run.run_id))
        elif old.created_at != summary.created_at:
            self._remove(run.run_id)
            bisect.insort(self._keys, (summary.created_at, run.run_id))
        self._by_id[run.run_id] = summary
        self.stages.observe(run)

    def _remove(self, run_id: str) -> None:
        old = self._by_id.pop(run_id, None)
        if old is not None:
            i = bisect.bisect_left(self._keys, (old.created_at, run_id))
            if i < len(self._keys) and self._keys[i] == (old.created_at, run_id):
                del self._keys[i]

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._by_id)

    def states(self) -> Counter[str]:
        return Counter(s.state for s in self._by_id.values())

    def _newest_first(self, before: SortKey | None) -> Iterator[RunSummary]:
        end = len(self._keys) if before is None else bisect.bisect_left(self._keys, before)
        for i in range(end - 1, -1, -1):
            yield self._by_id[self._keys[i][1]]

    def page(
        self,
        *,
        repo: str | None = None,
        ref: str | None = None,
        state: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[RunSummary], str | None]:
        """Newest first, stable under concurrent inserts; the cursor is the last key returned."""
        before = decode_cursor(cursor) if cursor else None
        out: list[RunSummary] = []
        for s in self._newest_first(before):
            if since is not None and s.created_at < since:
                break  # sorted by created_at: nothing older can match
            if (
                (repo is None or s.repo == repo)
                and (ref is None or s.ref == ref)
                and (state is None or s.state == state)
            ):
                out.append(s)
                if len(out) > limit:
                    break
        more = len(out) > limit
        out = out[:limit]
        nxt = encode_cursor((out[-1].created_at, out[-1].run_id)) if more and out else None
        return out, nxt
