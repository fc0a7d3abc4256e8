"""Event ingest: push events accepted, deduplicated and turned into runs, per second.

Target (issue 2): >= 2,000 events/s on this 2-core machine. Every event is published
twice (as a retrying hook or a webhook redelivery would); the second copy must be dropped.

    .venv/bin/python -m bench.ingest [--repos 50 --commits 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from bench.common import make_repo, push_event, report, workdir
from engine import aio, logs
from engine import subjects as S
from engine.app import make_engine, nats_session
from engine.client import publish_push
from engine.natsd import EmbeddedNats, free_port
from engine.notify import RunNotice
from engine.settings import Settings
from engine.store import RunStore


async def main(n_repos: int, n_commits: int) -> None:
    with workdir() as d:
        repos = {f"repo{i:02d}": make_repo(d / f"repo{i:02d}.git", n_commits, {"a.yaml": "a: 1\n"})
                 for i in range(n_repos)}
        settings = Settings(home=d / "home", log_level="warning")
        logs.configure("warning")
        events = [push_event(name, str(d / f"{name}.git"), shas[j], before=shas[j - 1] if j else None)
                  for j in range(n_commits) for name, shas in repos.items()]
        async with EmbeddedNats(d / "nats", free_port()) as url:
            settings = settings.model_copy(update={"nats_url": url})
            async with nats_session(settings, name="bench") as (nc, topo):
                # 1. publish everything (twice) before the engine starts: a backlog to chew through
                t_pub = time.perf_counter()
                acks = []
                for i in range(0, len(events), 500):
                    chunk = events[i:i + 500]
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
                import psutil
                srv = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "nats-server"][-1]
                srv_cpu0 = sum(srv.cpu_times()[:2])
                t0, c0, ch0 = time.perf_counter(), time.process_time(), os.times()
                prof = None
                if os.environ.get("BENCH_PROFILE"):
                    import cProfile

                    prof = cProfile.Profile()
                    prof.enable()
                async with make_engine(nc, topo, settings):
                    await asyncio.wait_for(all_in.wait(), 300)
                    ingest_s = time.perf_counter() - t0
                    cpu_s = time.process_time() - c0
                    ch1 = os.times()
                    git_cpu = (ch1.children_user + ch1.children_system) - (ch0.children_user + ch0.children_system)
                    srv_cpu = sum(srv.cpu_times()[:2]) - srv_cpu0
                if prof is not None:
                    prof.disable()
                    prof.dump_stats(os.environ["BENCH_PROFILE"])
                keys = await RunStore(topo.runs).keys()
        report("ingest", {
            "events": len(events), "published_with_duplicates": len(acks), "duplicates_dropped": acks.count(False),
            "runs_created": len(keys), "publish_s": round(pub_s, 3), "ingest_s": round(ingest_s, 3),
            "events_per_s": round(len(events) / ingest_s),
            "engine_cpu_s": round(cpu_s, 3), "nats_server_cpu_s": round(srv_cpu, 3),
            "git_children_cpu_s": round(git_cpu, 3), "target": ">= 2000 events/s",
        })
        assert len(keys) == len(events), "lost or duplicated runs"
        assert acks.count(False) == len(events), "duplicates not dropped"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repos", type=int, default=50)
    ap.add_argument("--commits", type=int, default=40)
    a = ap.parse_args()
    aio.run(main(a.repos, a.commits))
