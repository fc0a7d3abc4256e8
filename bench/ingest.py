"""Event ingest: push events accepted, deduplicated and turned into runs, per second.

Targets (issue 17): >= 3,000 events/s on one nats-server, >= 2,000 events/s on a 3-node
cluster with R3 streams (loopback, this 2-core machine), measured in the same invocation.
Every event is published twice (as a retrying hook or a webhook redelivery would); the
second copy must be dropped.

    .venv/bin/python -m bench.ingest [--repos 50 --commits 40] [--rounds 3] [--only single|cluster]
                                     [--sync-interval always]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import psutil

from bench.common import make_repo, push_event, report, workdir
from lintas.engine import aio, logs
from lintas.engine import subjects as S
from lintas.engine.app import make_engine, nats_session
from lintas.engine.client import publish_push
from lintas.engine.cluster import LocalCluster
from lintas.engine.events import PushEvent
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.notify import RunNotice
from lintas.engine.settings import Settings, StreamLimits
from lintas.engine.store import RunStore


def _server_pids(server: EmbeddedNats | LocalCluster) -> list[int]:
    if isinstance(server, LocalCluster):
        return [n.pid for n in server.nodes]
    return [server.pid]


async def one(d: Path, mode: str, events: list[PushEvent], replicas: int, sync: str | None) -> dict[str, float | int]:
    server: EmbeddedNats | LocalCluster = (
        LocalCluster(d / "cluster", 3, sync_interval=sync)
        if mode == "cluster"
        else EmbeddedNats(d / "nats", free_port(), sync_interval=sync)
    )
    cm: AbstractAsyncContextManager[str] = server
    async with cm as url:
        settings = Settings(home=d / "home", log_level="warning", nats_url=url, streams=StreamLimits(replicas=replicas))
        async with nats_session(settings, name="bench") as (nc, topo):
            # 1. publish everything (twice) before the engine starts: a backlog to chew through
            t_pub = time.perf_counter()
            acks: list[bool] = []
            for i in range(0, len(events), 500):
                chunk = events[i : i + 500]
                acks += await asyncio.gather(*(publish_push(topo.js, e) for e in chunk + chunk))
            pub_s = time.perf_counter() - t_pub
            seen: set[str] = set()
            all_in = asyncio.Event()

            async def on_notice(msg) -> None:  # type: ignore[no-untyped-def]
                seen.add(RunNotice.model_validate_json(msg.data).run_id)
                if len(seen) >= len(events):
                    all_in.set()

            await nc.subscribe(S.NOTIFY_ALL, cb=on_notice)
            # 2. the engine turns the backlog into runs
            procs = [psutil.Process(pid) for pid in _server_pids(server)]
            srv_cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
            t0, c0 = time.perf_counter(), time.process_time()
            prof = None
            if os.environ.get("BENCH_PROFILE"):
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            async with make_engine(nc, topo, settings):
                await asyncio.wait_for(all_in.wait(), 300)
                ingest_s = time.perf_counter() - t0
                cpu_s = time.process_time() - c0
                srv_cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - srv_cpu0
            if prof is not None:
                prof.disable()
                prof.dump_stats(f"{os.environ['BENCH_PROFILE']}.{mode}")
            keys = await RunStore(topo.runs).keys()
    assert len(keys) == len(events), f"{mode}: lost or duplicated runs ({len(keys)} != {len(events)})"
    assert acks.count(False) == len(events), f"{mode}: duplicates not dropped"
    return {
        "events_per_s": round(len(events) / ingest_s),
        "publish_s": round(pub_s, 3),
        "ingest_s": round(ingest_s, 3),
        "engine_cpu_s": round(cpu_s, 3),
        "nats_server_cpu_s": round(srv_cpu, 3),
    }


async def main(n_repos: int, n_commits: int, rounds: int, only: str | None, sync: str | None) -> None:
    logs.configure("warning")
    modes = [m for m in ("single", "cluster") if only in (None, m)]
    results: dict[str, list[dict[str, float | int]]] = {m: [] for m in modes}
    with workdir() as d:
        repos = {
            f"repo{i:02d}": make_repo(d / f"repo{i:02d}.git", n_commits, {"a.yaml": "a: 1\n"}) for i in range(n_repos)
        }
        events = [
            push_event(name, str(d / f"{name}.git"), shas[j], before=shas[j - 1] if j else None)
            for j in range(n_commits)
            for name, shas in repos.items()
        ]
        for r in range(rounds):  # alternate, so both see the same machine load
            for mode in modes:
                run_dir = d / f"{mode}-{r}"
                run_dir.mkdir()
                results[mode].append(await one(run_dir, mode, events, 3 if mode == "cluster" else 1, sync))
    out: dict[str, object] = {"events": len(events), "rounds": rounds, "sync_interval": sync or "default"}
    for mode, rs in results.items():
        eps = [int(x["events_per_s"]) for x in rs]
        out[mode] = {
            "events_per_s_median": statistics.median(eps),
            "events_per_s_range": [min(eps), max(eps)],
            "engine_cpu_s_median": statistics.median(float(x["engine_cpu_s"]) for x in rs),
            "nats_server_cpu_s_median": statistics.median(float(x["nats_server_cpu_s"]) for x in rs),
            "rounds": rs,
        }
    out["target"] = "single >= 3000 events/s, cluster (3 nodes, R3) >= 2000 events/s"
    report("ingest", out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repos", type=int, default=50)
    ap.add_argument("--commits", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["single", "cluster"], default=None)
    ap.add_argument("--sync-interval", default=None, help='JetStream fsync: "always" to measure its cost')
    a = ap.parse_args()
    aio.run(main(a.repos, a.commits, a.rounds, a.only, a.sync_interval))
