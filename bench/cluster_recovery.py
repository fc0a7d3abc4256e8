"""Recovery on a 3-node cluster (R3): time from SIGKILLing a NATS node to the first run,
pushed right after the kill, finishing. Engine and worker run as `lintas up --cluster 3` runs
them; the victim is the node that leads LINTAS_JOBS (worst case: dispatch waits for the
election), then the meta leader, alternately; the node is restarted between rounds.

    .venv/bin/python -m bench.cluster_recovery [--rounds 6] [--sync-interval always]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time

from bench.common import make_repo, noop_pipeline, push_event, report, workdir
from lintas.engine import aio, logs
from lintas.engine import subjects as S
from lintas.engine.app import build_stages, stack
from lintas.engine.client import publish_push
from lintas.engine.natsd import free_port
from lintas.engine.notify import RunNotice
from lintas.engine.settings import Settings

TERMINAL = ("succeeded", "failed", "rolled_back", "canceled", "superseded")


async def main(rounds: int, sync_interval: str | None) -> None:
    with workdir() as d:
        shas = make_repo(d / "infra.git", rounds + 2, {".lintas/pipeline.yaml": noop_pipeline(3)})
        settings = Settings(
            home=d / "home",
            nats_port=free_port(),
            log_level="error",
            nats_sync_interval=sync_interval,
            job_ack_wait_s=10.0,
        )
        logs.configure("error")
        async with stack(settings, stages=build_stages(settings, ["t-noop"]), worker_concurrency=4, cluster=3) as st:
            assert st.cluster is not None
            done: dict[str, asyncio.Future[str]] = {}

            async def on_notice(msg) -> None:  # type: ignore[no-untyped-def]
                n = RunNotice.model_validate_json(msg.data)
                fut = done.get(n.run_id)
                if fut and not fut.done() and n.state in TERMINAL:
                    fut.set_result(n.state)

            await st.nc.subscribe(S.NOTIFY_ALL, cb=on_notice)
            url = str(d / "infra.git")
            times: list[float] = []
            for i, sha in enumerate(shas[: rounds + 1]):
                await asyncio.to_thread(
                    subprocess.run, ["git", "update-ref", "refs/heads/main", sha], cwd=url, check=True
                )
                if i:  # round 0 warms up (mirror clone)
                    if i % 2:
                        victim = st.cluster.node((await st.topo.js.stream_info(S.JOBS_STREAM)).cluster.leader)  # type: ignore[union-attr, arg-type]
                    else:
                        victim = st.cluster.node(await st.cluster.wait_meta_leader())
                    st.cluster.kill(victim)
                t0 = time.perf_counter()
                ev = push_event("infra", url, sha, before=shas[i - 1] if i else None)
                fut = asyncio.get_running_loop().create_future()
                done[ev.run_id] = fut
                await publish_push(st.topo.js, ev)
                state = await asyncio.wait_for(fut, 120)
                assert state == "succeeded", state
                if i:
                    times.append(time.perf_counter() - t0)
                    await st.cluster.restart(victim)
                    await st.cluster.wait_meta_leader()
                    await asyncio.sleep(2)  # let the restarted node catch up before the next kill
            report(
                "cluster_recovery",
                {
                    "rounds": len(times),
                    "sync_interval": sync_interval or "default",
                    "kill_to_first_run_done_s": {
                        "median": round(statistics.median(times), 2),
                        "range": [round(min(times), 2), round(max(times), 2)],
                        "all": [round(t, 2) for t in times],
                    },
                },
            )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--sync-interval", default=None)
    a = ap.parse_args()
    aio.run(main(a.rounds, a.sync_interval))
