"""The journal and the engine's reports of one job, on a real nats-server: a job delivered afresh
after it is done is not run again; every start report of a job is settled."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from nats.aio.msg import Msg

from lintas.engine import subjects as S
from lintas.engine.app import stack
from lintas.engine.bus import publish_acked
from lintas.engine.events import JobFinished, JobStarted
from lintas.engine.settings import Settings
from lintas.engine.state import RunState
from tests.cluster.kit import marks
from tests.integration.helpers import commit, make_repo, pipeline, push, run_id_of, wait_run


async def test_two_start_reports_of_one_job_are_both_settled(tmp_path: Path, settings: Settings) -> None:
    """A start report waits a moment for its job's result (one run write for both); a second
    start of the same job (another delivery's) while one waits is decided at once, and every
    report is acked: none is left pending on the engine's consumer."""
    repo = make_repo(tmp_path, settings)
    async with stack(settings) as st:
        sha = commit(repo, settings, pipeline("  slow:\n    uses: t-sleep\n    with: {seconds: 1.0}\n"), "slow")
        push(repo, settings)
        rid = run_id_of(repo, sha)
        run = await wait_run(st.topo, rid, states={"running"})
        for _ in range(100):
            run = await wait_run(st.topo, rid, states={"running"})
            if run.stages["slow"].job_id:
                break
            await asyncio.sleep(0.02)
        rec = run.stages["slow"]
        assert rec.job_id is not None
        for delivery in (7, 8):  # two more starts of the job, back to back: both linger at once
            started = JobStarted(
                event_id=f"{rec.job_id}:started:{delivery}",
                occurred_at=datetime.now(UTC),
                job_id=rec.job_id,
                run_id=rid,
                stage="slow",
                attempt=rec.attempt,
                worker="another-worker",
                delivery=delivery,
            )
            await st.nc.publish(S.result(rid), started.model_dump_json().encode())
        run = await wait_run(st.topo, rid)
        assert run.state is RunState.succeeded, run.error
        pending = None
        for _ in range(40):
            info = await st.topo.js.consumer_info(S.RESULTS_STREAM, S.ENGINE_RESULTS_CONSUMER)
            pending = (info.num_ack_pending, info.num_pending)
            if pending == (0, 0):
                break
            await asyncio.sleep(0.05)
        assert pending == (0, 0), pending


async def test_a_job_sent_again_after_it_is_done_is_not_run_again(tmp_path: Path, settings: Settings) -> None:
    """The same job delivered afresh (an engine re-sending it after the stream's duplicate
    window): the worker finds its result in the journal and publishes it again, without running
    the stage a second time."""
    repo = make_repo(tmp_path, settings)
    async with stack(settings) as st:
        jobs: list[bytes] = []

        async def on_job(msg: Msg) -> None:
            jobs.append(msg.data)

        await st.nc.subscribe(S.job("t-noop"), cb=on_job)
        sha = commit(repo, settings, pipeline("  pure:\n    uses: t-noop\n    with: {mark: true}\n"), "pure")
        push(repo, settings)
        rid = run_id_of(repo, sha)
        run = await wait_run(st.topo, rid)
        assert run.state is RunState.succeeded, run.error
        assert len(jobs) == 1 and len(marks(settings, rid, "pure")) == 1
        results: list[JobFinished] = []

        async def on_result(msg: Msg) -> None:
            if b'"job_finished"' in msg.data:
                results.append(JobFinished.model_validate_json(msg.data))

        await st.nc.subscribe(S.result(rid), cb=on_result)
        await publish_acked(st.topo.js, S.job("t-noop"), jobs[0], msg_id="sent-again")  # a new message, delivery 1
        for _ in range(100):
            if results:
                break
            await asyncio.sleep(0.05)
        assert [r.job_id for r in results] == [run.stages["pure"].job_id]  # its result, published again
        assert len(marks(settings, rid, "pure")) == 1  # and the stage did not run again
