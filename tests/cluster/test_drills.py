"""Fault drills on a real 3-node JetStream cluster (R3): nodes, leaders, engines and workers
die mid-flight; every push still gives exactly one run, every run ends, no stage's effect
happens twice."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lintas.engine.cluster import LocalCluster
from lintas.engine.settings import Settings
from lintas.engine.spool import Spool
from lintas.engine.state import RunState, StageStatus
from tests.cluster.kit import (
    EVENTS,
    JOBS,
    ClusterProc,
    journal_of,
    make_repo,
    marks,
    noop_pipeline,
    push_branches,
    run_id,
    wait_terminal,
)

pytestmark = [
    pytest.mark.integration,
    # nats-py leaves a socket writer unclosed when a reconnect attempt reaches a node that is
    # still starting ("empty response from server when expecting INFO"): the library's leak, not ours
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <function StreamWriter.__del__:pytest.PytestUnraisableExceptionWarning"
    ),
]


async def push_async(work: Path, settings: Settings, branches: list[str]) -> str:
    done = await asyncio.to_thread(push_branches, work, settings, branches)
    return done.stderr


async def test_node_sigkilled_mid_burst_every_branch_gets_exactly_one_run(
    tmp_path: Path,
    csettings: Settings,
    healthy: LocalCluster,
    session: object,
    cprocs: Callable[..., ClusterProc],
) -> None:
    nc, topo = session  # type: ignore[misc]
    engine = cprocs("engine", log="engine.log")
    workers = [cprocs("worker", "--stage", "t-noop", "--concurrency", "8", log=f"worker{i}.log") for i in (1, 2)]
    await engine.wait_log("engine started", 30)
    for w in workers:
        await w.wait_log("worker started", 30)
    work, sha = make_repo(tmp_path, csettings, noop_pipeline(2))
    branches = [f"b{i:03d}" for i in range(200)]
    info = await topo.js.stream_info(EVENTS)
    victim = healthy.node(info.cluster.leader)  # the node that orders the pushes

    outputs: list[str] = []
    four_done = asyncio.Event()

    async def burst() -> None:  # 10 pushes of 20 branches, back to back
        for k in range(10):
            outputs.append(await push_async(work, csettings, branches[k * 20 : (k + 1) * 20]))
            if k == 3:
                four_done.set()

    t0 = time.monotonic()
    pushing = asyncio.create_task(burst())
    await four_done.wait()
    await asyncio.sleep(0.8)  # inside the 5th push's hook
    healthy.kill(victim)  # the events stream leader: the node that orders the pushes
    killed_at = time.monotonic()
    await pushing
    await healthy.restart(victim)
    # what the last pushes could not hand over is spooled: the flusher a git server runs beside it
    flush = cprocs("spool", "flush", log="flush.log")
    assert await asyncio.to_thread(flush.p.wait, 60) == 0  # type: ignore[union-attr]
    assert Spool(csettings.spool_dir).pending() == [], outputs
    for out in outputs:  # each push: what was not published was spooled, nothing else
        published = int(re.search(r"published (\d+)", out).group(1))  # type: ignore[union-attr]
        spooled = re.search(r"spooled (\d+)", out)
        assert published + (int(spooled.group(1)) if spooled else 0) == 20, out

    expected = {run_id("drill", b, sha) for b in branches}
    runs = await wait_terminal(topo, expected, timeout=120)
    took = time.monotonic() - t0
    assert set(runs) == expected, f"{len(set(runs) - expected)} unexpected runs"  # one run per branch, no more
    for rid in expected:
        run = runs[rid]
        assert run.state is RunState.succeeded, (rid, run.state, run.error)
        for name, rec in run.stages.items():
            assert rec.status is StageStatus.succeeded and rec.attempt == 1, (rid, name, rec)
    # the effect happened once: every stage's journal entry is done with one result
    for rid in list(expected)[:40]:
        for name, entry in (await journal_of(topo, runs[rid])).items():
            assert entry is not None and entry.state == "done", (rid, name, entry)
            assert len(marks(csettings, rid, name)) == entry.executions, (rid, name)
    print("\n".join(o.strip() for o in outputs))
    print(f"200 runs after a node kill: {took:.1f}s; killed {time.monotonic() - killed_at:.1f}s ago")


async def start_stack(
    cprocs: Callable[..., ClusterProc], kinds: list[str], engines: int = 1, workers: int = 2
) -> tuple[list[ClusterProc], list[ClusterProc]]:
    eng = [cprocs("engine", log=f"engine{i}.log") for i in range(engines)]
    wrk = [
        cprocs("worker", *(a for k in kinds for a in ("--stage", k)), "--concurrency", "8", log=f"worker{i}.log")
        for i in range(workers)
    ]
    for p in eng:
        await p.wait_log("engine started", 30)
    for p in wrk:
        await p.wait_log("worker started", 30)
    return eng, wrk


async def wait_stage_status(
    topo: object, rid: str, stage: str, status: StageStatus, timeout: float = 30, *, or_done: bool = False
) -> None:
    """Until ``stage`` of ``rid`` has ``status`` (or, with ``or_done``, already succeeded: the test's
    own reads may be held up by the election it caused while a short stage runs and ends)."""
    from lintas.engine.store import RunStore

    store = RunStore(topo.runs)  # type: ignore[attr-defined]
    wanted = {status, StageStatus.succeeded} if or_done else {status}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        got = await store.get(RunStore.key(rid))
        if got is not None and stage in got[0].stages and got[0].stages[stage].status in wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{rid}/{stage} never {status}")


async def test_meta_leader_then_jobs_stream_leader_killed_during_a_run(
    tmp_path: Path,
    csettings: Settings,
    healthy: LocalCluster,
    session: object,
    cprocs: Callable[..., ClusterProc],
) -> None:
    nc, topo = session  # type: ignore[misc]
    await start_stack(cprocs, ["t-sleep"])
    work, sha = make_repo(tmp_path, csettings, noop_pipeline(4, "t-sleep", ", seconds: 1.5"))
    await push_async(work, csettings, ["main"])
    rid = run_id("drill", "main", sha)

    await wait_stage_status(topo, rid, "s1", StageStatus.running)
    meta = healthy.node(await healthy.wait_meta_leader())
    healthy.kill(meta)  # the JetStream meta leader, while s1 runs
    await wait_stage_status(topo, rid, "s2", StageStatus.running, 60, or_done=True)
    await healthy.restart(meta)
    await healthy.wait_meta_leader()
    await wait_stage_status(topo, rid, "s3", StageStatus.running, 60, or_done=True)
    info = await topo.js.stream_info(JOBS)
    jobs_leader = healthy.node(info.cluster.leader)
    healthy.kill(jobs_leader)  # the LINTAS_JOBS leader, while s3 runs: s3's ack and s4's dispatch meet the election
    await wait_stage_status(topo, rid, "s4", StageStatus.running, 60, or_done=True)
    await healthy.restart(jobs_leader)

    run = (await wait_terminal(topo, {rid}, timeout=90))[rid]
    assert run.state is RunState.succeeded, run.error
    for name, entry in (await journal_of(topo, run)).items():
        rec = run.stages[name]
        assert rec.attempt == 1, (name, rec)
        assert entry is not None and entry.state == "done" and entry.executions == 1, (name, entry)
        assert len(marks(csettings, rid, name)) == 1, name


test_meta_leader_then_jobs_stream_leader_killed_during_a_run.ack_wait_s = 10.0  # type: ignore[attr-defined]


async def test_engine_sigkilled_at_each_stage_boundary(
    tmp_path: Path,
    csettings: Settings,
    healthy: LocalCluster,
    session: object,
    cprocs: Callable[..., ClusterProc],
) -> None:
    """10 runs of 3 stages; the engine is SIGKILLed as each stage finishes (the boundary: the
    result is in, the next stage not yet dispatched) and restarted."""
    nc, topo = session  # type: ignore[misc]
    engines, _ = await start_stack(cprocs, ["t-sleep"])
    work, sha = make_repo(tmp_path, csettings, noop_pipeline(3, "t-sleep", ", seconds: 1.0"))
    branches = [f"e{i:02d}" for i in range(10)]
    await push_async(work, csettings, branches)
    rids = {run_id("drill", b, sha) for b in branches}
    engine = engines[0]
    for n, stage in enumerate(("s1", "s2", "s3")):
        # the first run to finish this stage: kill the engine right there
        await asyncio.wait(
            [asyncio.create_task(wait_stage_status(topo, r, stage, StageStatus.succeeded, 60)) for r in rids],
            return_when=asyncio.FIRST_COMPLETED,
        )
        engine.kill()
        await asyncio.sleep(0.5)
        engine = cprocs("engine", log=f"engine-after-{n}.log")
        await engine.wait_log("engine started", 30)

    runs = await wait_terminal(topo, rids, timeout=90)
    assert set(runs) == rids
    for rid in rids:
        run = runs[rid]
        assert run.state is RunState.succeeded, (rid, run.error)
        for name, entry in (await journal_of(topo, run)).items():
            assert run.stages[name].attempt == 1, (rid, name)
            assert entry is not None and entry.state == "done" and entry.executions == 1, (rid, name, entry)
            assert len(marks(csettings, rid, name)) == 1, (rid, name)


async def test_sigstopped_worker_late_result_is_ignored(
    tmp_path: Path,
    csettings: Settings,
    healthy: LocalCluster,
    session: object,
    cprocs: Callable[..., ClusterProc],
) -> None:
    """A worker frozen (SIGSTOP) for twice the ack wait: the job goes to the other worker,
    which finishes it; the frozen one wakes (SIGCONT), finishes too, and its result is ignored."""
    nc, topo = session  # type: ignore[misc]
    _, workers = await start_stack(cprocs, ["t-sleep"])
    work, sha = make_repo(tmp_path, csettings, noop_pipeline(1, "t-sleep", ", seconds: 1.0"))
    await push_async(work, csettings, ["main"])
    rid = run_id("drill", "main", sha)
    from lintas.engine.events import Job
    from lintas.engine.journal import Journal

    journal = Journal(topo.journal)
    job_id = Job.make_id(rid, "s1", 1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    entry = None
    while loop.time() < deadline:
        entry = await journal.get(job_id)
        if entry is not None and entry.workers:
            break
        await asyncio.sleep(0.02)
    assert entry is not None and entry.workers
    first = next(w for w in workers if entry.workers[0].endswith(f":{w.pid}"))
    first.stop_signal()  # frozen mid-job: no heartbeat, no result
    await asyncio.sleep(2 * csettings.job_ack_wait_s)
    run = (await wait_terminal(topo, {rid}, timeout=30))[rid]  # the other worker finished it meanwhile
    first.cont()
    await asyncio.sleep(2.0)  # the late worker finishes its sleep and reports
    entry = await journal.get(job_id)
    assert entry is not None and entry.state == "done" and entry.executions == 2, entry
    assert entry.result is not None and not entry.result.worker.endswith(f":{first.pid}"), entry
    after = (await wait_terminal(topo, {rid}, timeout=5))[rid]
    assert after == run  # the late result changed nothing
    assert run.state is RunState.succeeded and run.stages["s1"].attempt == 1
    assert len(marks(csettings, rid, "s1")) == 2  # it began twice; one result counts


async def test_two_engines_one_sigkilled_mid_burst(
    tmp_path: Path,
    csettings: Settings,
    healthy: LocalCluster,
    session: object,
    cprocs: Callable[..., ClusterProc],
) -> None:
    """Two engines share the work (compare-and-set decides); one dies mid-burst and the other
    takes over its inputs (after the engine ack wait) and its runs (rescan)."""
    nc, topo = session  # type: ignore[misc]
    engines, _ = await start_stack(cprocs, ["t-sleep"], engines=2)
    work, sha = make_repo(tmp_path, csettings, noop_pipeline(3, "t-sleep", ", seconds: 0.3"))
    branches = [f"t{i:02d}" for i in range(40)]
    await push_async(work, csettings, branches[:20])
    await asyncio.sleep(1.0)
    engines[0].kill()
    killed = time.monotonic()
    await push_async(work, csettings, branches[20:])
    rids = {run_id("drill", b, sha) for b in branches}
    runs = await wait_terminal(topo, rids, timeout=90)
    took = time.monotonic() - killed
    assert set(runs) == rids
    for rid in rids:
        run = runs[rid]
        assert run.state is RunState.succeeded, (rid, run.error)
        for name, entry in (await journal_of(topo, run)).items():
            assert run.stages[name].attempt == 1 and entry is not None and entry.executions == 1, (rid, name)
    both = [(tmp_path / f"engine{i}.log").read_text().count("run created") for i in (0, 1)]
    assert all(both), f"both engines should have worked: {both}"
    print(f"two engines, one killed: all 40 runs done {took:.1f}s after the kill; runs created per engine {both}")


async def test_whole_cluster_down_30s_pushes_spool_then_each_becomes_one_run(
    tmp_path: Path,
    csettings: Settings,
    healthy: LocalCluster,
    session: object,
    cprocs: Callable[..., ClusterProc],
) -> None:
    nc, topo = session  # type: ignore[misc]
    await start_stack(cprocs, ["t-noop"])
    flusher = cprocs("spool", "flush", "--watch", "--every", "1", log="flusher.log")
    work, sha = make_repo(tmp_path, csettings, noop_pipeline(2))
    before = [f"u{i:02d}" for i in range(5)]
    await push_async(work, csettings, before)
    await healthy.stop()  # every node, for 30 s
    down_at = time.monotonic()
    during = [f"d{i:02d}" for i in range(30)]
    outs = [await push_async(work, csettings, during[k * 10 : (k + 1) * 10]) for k in range(3)]
    assert all("spooled 10 event(s)" in o for o in outs), outs
    assert len(Spool(csettings.spool_dir).pending()) == 30
    await asyncio.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
    for node in healthy.nodes:
        await healthy.restart(node)
    await healthy.wait_meta_leader()
    rids = {run_id("drill", b, sha) for b in before + during}
    runs = await wait_terminal(topo, rids, timeout=120)
    assert set(runs) == rids
    assert all(r.state is RunState.succeeded for r in runs.values()), [r.error for r in runs.values()]
    assert Spool(csettings.spool_dir).pending() == []
    await flusher.wait_log("flushed spooled events", 5)
