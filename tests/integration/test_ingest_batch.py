"""A burst of pushes already in the stream when the engine fetches them (the hook of a
multi-branch `git push`, a backlog after an outage): every push still gives exactly one run,
each branch ends with its newest push, and the older pushes of a branch in one fetched batch
are created already superseded (one write each), on a real nats-server."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

from nats.aio.msg import Msg

from bench.common import make_repo, push_event
from lintas.engine import subjects as S
from lintas.engine.app import make_engine, nats_session
from lintas.engine.client import publish_push
from lintas.engine.events import LogLine, PushEvent
from lintas.engine.settings import Settings
from lintas.engine.state import Run, RunState
from lintas.engine.store import RunStore

BRANCHES = 3
PUSHES = 6


async def test_a_backlog_gives_one_run_per_push_and_each_branch_its_newest(tmp_path: Path, settings: Settings) -> None:
    events: list[PushEvent] = []
    for b in range(BRANCHES):
        name = f"repo{b}"
        shas = make_repo(tmp_path / f"{name}.git", PUSHES, {"a.yaml": "a: 1\n"})
        events += [
            push_event(name, str(tmp_path / f"{name}.git"), sha, before=shas[i - 1] if i else None)
            for i, sha in enumerate(shas)
        ]
    async with nats_session(settings, name="test") as (nc, topo):
        lines: list[LogLine] = []

        async def collect(msg: Msg) -> None:
            lines.append(LogLine.model_validate_json(msg.data))

        await nc.subscribe(S.LOGS_ALL, cb=collect)
        for e in events:  # in order: a later push of a branch has a higher stream sequence
            assert await publish_push(topo.js, e)
        store = RunStore(topo.runs)
        async with make_engine(nc, topo, settings):
            runs = await _all_settled(store, events)
        await asyncio.sleep(0.2)  # the last log lines
    by_branch: dict[str, list[Run]] = defaultdict(list)
    for r in runs.values():
        by_branch[r.repo].append(r)
    assert len(runs) == len(events)  # exactly one run per push, none lost, none doubled
    for repo, rs in by_branch.items():
        rs.sort(key=lambda r: r.event_seq)
        newest, older = rs[-1], rs[:-1]
        assert newest.state is not RunState.superseded, repo
        seqs = {r.run_id: r.event_seq for r in rs}
        for r in older:
            assert r.state is RunState.superseded, (repo, r.run_id, r.state)
            assert r.superseded_by in seqs and seqs[r.superseded_by] > r.event_seq  # by a newer push of its branch
            assert r.started_at is None and r.stages == {}  # never ran
    born = {ln.run_id for ln in lines if "a newer push to the branch in the same batch" in ln.message}
    assert born == {r.run_id for rs in by_branch.values() for r in rs[:-1]}  # all in one fetch here


async def _all_settled(store: RunStore, events: list[PushEvent], timeout_s: float = 30.0) -> dict[str, Run]:
    """Every push's run, once each branch's newest has left ``queued``."""
    wanted = {e.run_id for e in events}
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        runs = {r.run_id: r async for r, _ in store.all() if r.run_id in wanted}
        if len(runs) == len(wanted) and not any(r.state is RunState.queued for r in runs.values()):
            return runs
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{len(runs)}/{len(wanted)} runs, {[r.state for r in runs.values()]}")
        await asyncio.sleep(0.1)
