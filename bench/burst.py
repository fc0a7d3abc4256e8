"""A burst of 1,000 pushes across 50 repos: every run reaches a terminal state, none is
lost or duplicated, and peak engine RSS stays <= 300 MB (issue 2).

The engine runs in this process (its RSS is sampled every 20 ms); the validate workers
run in a separate `lintas worker` process, as they would in production.

    .venv/bin/python -m bench.burst [--repos 50 --pushes 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections import Counter

import psutil

from bench.common import make_repo, push_event, report, workdir
from lintas.engine import aio, logs
from lintas.engine.app import make_engine, nats_session
from lintas.engine.client import publish_push
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.settings import Settings
from lintas.engine.store import RunStore


async def main(n_repos: int, n_pushes: int) -> None:
    per_repo = n_pushes // n_repos
    logs.configure("warning")
    with workdir() as d:
        template = {
            ".lintas/pipeline.yaml": "version: 1\nname: burst\nstages:\n  validate: {}\n",
            "data/burst.yaml": "mtu: 9216\nvnis: [10010, 10020]\n",
        }  # YAML validate reads (no model)
        repos = {f"repo{i:02d}": make_repo(d / f"repo{i:02d}.git", per_repo, template) for i in range(n_repos)}
        events = [
            push_event(name, str(d / f"{name}.git"), shas[j], before=shas[j - 1] if j else None)
            for j in range(per_repo)
            for name, shas in repos.items()
        ]
        async with EmbeddedNats(d / "nats", free_port()) as url:
            settings = Settings(home=d / "home", nats_url=url, log_level="warning")
            env = {
                **os.environ,
                "LINTAS_HOME": str(settings.home),
                "LINTAS_NATS_URL": url,
                "LINTAS_LOG_LEVEL": "warning",
            }
            cmd = [
                sys.executable,
                "-m",
                "lintas.engine.cli.main",
                "worker",
                "--stage",
                "validate",
                "--concurrency",
                "8",
            ]
            worker = subprocess.Popen(cmd, env=env)  # noqa: ASYNC220 - fork/exec returns at once
            me = psutil.Process()
            peak = me.memory_info().rss
            sampling = True

            async def sample() -> None:
                nonlocal peak
                while sampling:
                    peak = max(peak, me.memory_info().rss)
                    await asyncio.sleep(0.02)

            try:
                async with nats_session(settings, name="bench") as (_nc, topo):
                    sampler = asyncio.create_task(sample())
                    t0 = time.perf_counter()
                    async with make_engine(_nc, topo, settings):
                        for i in range(0, len(events), 100):  # a burst: 1,000 pushes as fast as they publish
                            await asyncio.gather(*(publish_push(topo.js, e) for e in events[i : i + 100]))
                        store = RunStore(topo.runs)
                        want = {e.run_id for e in events}
                        states: Counter[str] = Counter()
                        while True:
                            docs = {r.run_id: r async for r, _ in store.all()}
                            states = Counter(r.state.value for r in docs.values())
                            if set(docs) >= want and all(r.state.terminal for r in docs.values()):
                                break
                            if time.perf_counter() - t0 > 600:
                                raise SystemExit(f"not all terminal after 600 s: {states}")
                            await asyncio.sleep(0.5)
                        wall = time.perf_counter() - t0
                    sampling = False
                    await sampler
                    newest = {e.run_id for e in events[-n_repos:]}
                    assert all(docs[r].state.value == "succeeded" for r in newest), "newest push of a repo did not run"
                    assert set(docs) == want, "lost or extra runs"
            finally:
                worker.terminate()
                worker.wait(20)
    report(
        "burst",
        {
            "pushes": len(events),
            "repos": n_repos,
            "runs": len(docs),
            "states": dict(states),
            "wall_s": round(wall, 2),
            "peak_engine_rss_mb": round(peak / 2**20, 1),
            "target": "all terminal, RSS <= 300 MB",
        },
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repos", type=int, default=50)
    ap.add_argument("--pushes", type=int, default=1000)
    a = ap.parse_args()
    aio.run(main(a.repos, a.pushes))
