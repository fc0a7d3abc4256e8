"""A burst of pushes already in the stream when the engine fetches them (the hook of a
multi-branch `git push`, a backlog after an outage): every push still gives exactly one run,
each branch ends with its newest push, and the older pushes of a branch in one fetched batch
are created already superseded (one write each), on a real nats-server."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable
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
        async with make_engine(nc, topo, settings):  # no worker: a started run stays running
            runs = await _all_settled(store, events, until=_every_branch_admitted)
        await asyncio.sleep(0.2)  # the last log lines
    by_branch: dict[str, list[Run]] = defaultdict(list)
    for r in runs.values():
        by_branch[r.repo].append(r)
    assert len(runs) == len(events)  # exactly one run per push, none lost, none doubled
    born = {ln.run_id for ln in lines if "a newer push to the branch in the same batch" in ln.message}
    for repo, rs in by_branch.items():
        rs.sort(key=lambda r: r.event_seq)
        assert rs[-1].state is not RunState.superseded, repo  # the newest push is never superseded
        seqs = {r.run_id: r.event_seq for r in rs}
        for r in rs:
            if r.state is RunState.superseded:
                assert r.superseded_by in seqs and seqs[r.superseded_by] > r.event_seq  # by a newer push
                assert r.started_at is None and r.stages == {}  # never ran
        # a fetch may split the backlog: each part's first push may start (and the rest of the
        # branch queue behind it); every other push is superseded, most of them at birth
        live = [r for r in rs if r.state is not RunState.superseded]
        assert len(live) <= 2, [(r.event_seq, r.state) for r in rs]  # one active, one queued behind it
    assert born <= {r.run_id for r in runs.values() if r.state is RunState.superseded}
    assert len(born) >= len(events) // 2, len(born)


def _every_branch_admitted(runs: dict[str, Run]) -> bool:
    """Every push's run exists, and at most one per branch is still queued."""
    queued = Counter(r.repo for r in runs.values() if r.state is RunState.queued)
    return len(runs) == BRANCHES * PUSHES and all(n <= 1 for n in queued.values())


async def _all_settled(
    store: RunStore,
    events: list[PushEvent],
    timeout_s: float = 30.0,
    until: Callable[[dict[str, Run]], bool] | None = None,
) -> dict[str, Run]:
    """Every push's run, once none is ``queued`` (or ``until`` says so)."""
    wanted = {e.run_id for e in events}
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        runs = {r.run_id: r async for r, _ in store.all() if r.run_id in wanted}
        if until is not None and until(runs):
            return runs
        if until is None and len(runs) == len(wanted) and not any(r.state is RunState.queued for r in runs.values()):
            return runs
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{len(runs)}/{len(wanted)} runs, {[r.state for r in runs.values()]}")
        await asyncio.sleep(0.1)


async def test_pushes_out_of_order_in_a_batch_are_not_superseded_at_birth(tmp_path: Path, settings: Settings) -> None:
    """The branch head's push reached the stream before its parent's (two hooks at once, a late
    spool): the batch cannot tell which is newer, so neither is created superseded; admission
    and the freshness rule decide, with the head in view."""
    shas = make_repo(tmp_path / "repo.git", 2, {"a.yaml": "a: 1\n"})
    parent = push_event("repo", str(tmp_path / "repo.git"), shas[0])
    head = push_event("repo", str(tmp_path / "repo.git"), shas[1], before=shas[0])
    async with nats_session(settings, name="test") as (nc, topo):
        lines: list[LogLine] = []

        async def collect(msg: Msg) -> None:
            lines.append(LogLine.model_validate_json(msg.data))

        await nc.subscribe(S.LOGS_ALL, cb=collect)
        for e in (head, parent):  # the head first: the stream's order is not git's
            assert await publish_push(topo.js, e)
        async with make_engine(nc, topo, settings):
            runs = await _all_settled(RunStore(topo.runs), [head, parent], until=lambda r: len(r) == 2)
        await asyncio.sleep(0.2)
    assert not [ln for ln in lines if "in the same batch" in ln.message]
    assert RunState.superseded not in {r.state for r in runs.values()}  # one active, one queued behind it
