"""Engine overhead per run: a 6-stage pipeline whose stages do nothing, event -> terminal.

Target (issue 17): p50 <= 40 ms, p99 <= 150 ms. Engine, worker and embedded nats-server
run on this machine, exactly as `lintas up` runs them (`--cluster 3`: as `lintas up --cluster 3`,
three nats-server nodes and R3 streams).

    .venv/bin/python -m bench.engine_overhead [--runs 200] [--cluster 3]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time

from bench.common import make_repo, noop_pipeline, push_event, report, summary_ms, workdir
from lintas.engine import aio, logs
from lintas.engine import subjects as S
from lintas.engine.app import build_stages, stack
from lintas.engine.client import publish_push
from lintas.engine.natsd import free_port
from lintas.engine.notify import RunNotice
from lintas.engine.settings import Settings


async def main(runs: int, stages: int, cluster: int) -> None:
    with workdir() as d:
        shas = make_repo(d / "infra.git", runs + 5, {".lintas/pipeline.yaml": noop_pipeline(stages)})
        settings = Settings(home=d / "home", nats_port=free_port(), log_level="warning")
        logs.configure("warning")
        async with stack(
            settings, stages=build_stages(settings, ["t-noop"]), worker_concurrency=8, cluster=cluster
        ) as st:
            done: dict[str, asyncio.Future[str]] = {}

            async def on_notice(msg) -> None:  # type: ignore[no-untyped-def]
                n = RunNotice.model_validate_json(msg.data)
                fut = done.get(n.run_id)
                if fut and not fut.done() and n.state in ("succeeded", "failed", "rolled_back", "canceled"):
                    fut.set_result(n.state)

            await st.nc.subscribe(S.NOTIFY_ALL, cb=on_notice)
            url = str(d / "infra.git")
            latencies: list[float] = []
            for i, sha in enumerate(shas):
                # as a real push does: the branch points at the commit before its event is sent
                # (a push event for a commit that is no longer the head is refused as stale)
                await asyncio.to_thread(
                    subprocess.run, ["git", "update-ref", "refs/heads/main", sha], cwd=url, check=True
                )
                ev = push_event("infra", url, sha, before=shas[i - 1] if i else None)
                fut = asyncio.get_running_loop().create_future()
                done[ev.run_id] = fut
                t0 = time.perf_counter()
                await publish_push(st.topo.js, ev)
                state = await asyncio.wait_for(fut, 30)
                dt = time.perf_counter() - t0
                assert state == "succeeded", state
                if i >= 5:  # warm-up: first fetch of the repo into the mirror cache, JIT-ish caches
                    latencies.append(dt)
            report(
                "engine_overhead",
                {
                    "stages": stages,
                    "nats_nodes": max(cluster, 1),
                    "replicas": st.settings.streams.replicas,
                    **summary_ms(latencies),
                    "target": "p50 <= 40 ms, p99 <= 150 ms",
                },
            )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--stages", type=int, default=6)
    ap.add_argument("--cluster", type=int, default=0, help="N local nats-server nodes with routes (R3)")
    a = ap.parse_args()
    aio.run(main(a.runs, a.stages, a.cluster))
