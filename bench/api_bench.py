"""Status API benchmarks (issue 7), on a real stack (embedded nats-server, engine, worker):

- GET /api/v1/runs with 10,000 runs stored: p99 <= 50 ms (served from the in-memory run
  index the API keeps from a KV watch; KV is read once at start, not per request);
- stage transition -> SSE client (GET /api/v1/events): p99 <= 100 ms, measured from the
  run's ``updated_at`` (set by the engine when it decides) to the client reading the frame;
- webhook -> run queued: p99 <= 50 ms, from sending the signed POST to the run's first notice.

    .venv/bin/python -m bench.api_bench [--runs 10000] [--requests 500] [--hooks 200]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import time
from datetime import UTC, datetime, timedelta

import httpx

from bench.common import make_repo, noop_pipeline, report, summary_ms, workdir
from lintas.engine import aio, logs
from lintas.engine import subjects as S
from lintas.engine.api.app import create_app, server
from lintas.engine.api.settings import TokenEntry, WebhookRepo
from lintas.engine.app import build_stages, stack
from lintas.engine.natsd import free_port
from lintas.engine.notify import RunNotice
from lintas.engine.repos import RepoEntry, RepoRegistry
from lintas.engine.settings import Settings
from lintas.engine.state import Run, RunState
from lintas.engine.store import RunStore

TOKEN = "bench-token"
SECRET = "bench-secret"


async def seed(st_runs: RunStore, n: int) -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    sem = asyncio.Semaphore(256)

    async def one(i: int) -> None:
        t = base + timedelta(seconds=i)
        run = Run(
            run_id=f"r-seed{i:012d}",
            event_id=f"seed{i}",
            repo=f"repo{i % 10}",
            url="/dev/null",
            ref="refs/heads/main",
            sha=f"{i:040x}",
            state=RunState.succeeded,
            created_at=t,
            updated_at=t,
        )
        async with sem:
            await st_runs.create(RunStore.key(run.run_id), run)

    await asyncio.gather(*(one(i) for i in range(n)))


async def main(n_runs: int, n_requests: int, n_hooks: int) -> None:
    os.environ["LINTAS_BENCH_HOOK_SECRET"] = SECRET
    with workdir() as d:
        shas = make_repo(d / "infra.git", n_hooks + 2, {".lintas/pipeline.yaml": noop_pipeline(2)})
        settings = Settings(home=d / "home", nats_port=free_port(), log_level="warning")
        logs.configure("warning")
        RepoRegistry(settings.home).add(RepoEntry(name="infra", url=str(d / "infra.git")))
        api = settings.model_copy(
            update=dict(
                api_tokens=[
                    TokenEntry(name="bench", role="operator", sha256=hashlib.sha256(TOKEN.encode()).hexdigest())
                ],
                webhooks={"infra": WebhookRepo(github="acme/infra", secret_ref="env:LINTAS_BENCH_HOOK_SECRET")},
            )
        )
        async with stack(settings, stages=build_stages(settings, ["t-noop"]), worker_concurrency=8) as st:
            t0 = time.perf_counter()
            await seed(RunStore(st.topo.runs), n_runs)
            seeded_s = time.perf_counter() - t0
            app = create_app(st.nc, st.topo, api)
            addr = f"127.0.0.1:{free_port()}"
            srv = server(app, addr)
            task = asyncio.create_task(srv.serve())
            while not srv.started:  # noqa: ASYNC110 - polling a flag another component sets
                await asyncio.sleep(0.01)
            ctx = app.state.lintas
            t0 = time.perf_counter()
            await ctx.index.wait_ready(60)
            while len(ctx.index) < n_runs:  # noqa: ASYNC110 - polling a flag another component sets
                await asyncio.sleep(0.05)
            index_s = time.perf_counter() - t0
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(base_url=f"http://{addr}", headers=headers, timeout=30) as http:
                lat: list[float] = []
                filtered: list[float] = []
                for i in range(n_requests):
                    t = time.perf_counter()
                    res = await http.get("/api/v1/runs")
                    lat.append(time.perf_counter() - t)
                    assert res.status_code == 200 and len(res.json()) == 50
                    t = time.perf_counter()
                    res = await http.get(
                        "/api/v1/runs", params={"repo": f"repo{i % 10}", "state": "succeeded", "limit": 100}
                    )
                    filtered.append(time.perf_counter() - t)
                    assert res.status_code == 200
                # SSE client on the global feed, and first-notice times per run for the webhook bench
                sse_lat: list[float] = []
                first_seen: dict[str, float] = {}

                async def on_notice(msg) -> None:  # type: ignore[no-untyped-def]
                    rid = RunNotice.model_validate_json(msg.data).run_id
                    first_seen.setdefault(rid, time.perf_counter())

                await st.nc.subscribe(S.NOTIFY_ALL, cb=on_notice)

                async def sse_client() -> None:
                    async with http.stream("GET", "/api/v1/events", headers={"Accept": "text/event-stream"}) as res:
                        async for line in res.aiter_lines():
                            if line.startswith("data: "):
                                n = RunNotice.model_validate_json(line[6:])
                                sse_lat.append(time.time() - n.updated_at.timestamp())

                sse_task = asyncio.create_task(sse_client())
                await asyncio.sleep(0.3)
                hook_lat: list[float] = []
                for i, sha in enumerate(shas[1 : n_hooks + 1]):
                    body = json.dumps(
                        {
                            "ref": "refs/heads/main",
                            "before": shas[i],
                            "after": sha,
                            "repository": {"full_name": "acme/infra"},
                        }
                    ).encode()
                    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                    t = time.perf_counter()
                    res = await http.post(
                        "/hooks/github",
                        content=body,
                        headers={"X-Hub-Signature-256": sig, "X-GitHub-Event": "push", "X-GitHub-Delivery": f"d{i}"},
                    )
                    assert res.status_code == 202, res.text
                    rid = res.json()["run_id"]
                    while rid not in first_seen:  # noqa: ASYNC110 - polling a flag another component sets
                        await asyncio.sleep(0.0005)
                    hook_lat.append(first_seen[rid] - t)
                    await asyncio.sleep(0.02)  # let the branch queue drain a little (superseding is fine too)
                await asyncio.sleep(1.0)
                sse_task.cancel()
                await asyncio.gather(sse_task, return_exceptions=True)
            srv.should_exit = True
            await task
    report(
        "api",
        {
            "runs_stored": n_runs,
            "seed_s": round(seeded_s, 2),
            "index_build_s": round(index_s, 2),
            "list_runs": summary_ms(lat),
            "list_runs_filtered": summary_ms(filtered),
            "transition_to_sse": summary_ms(sse_lat),
            "webhook_to_queued": summary_ms(hook_lat),
            "targets_p99_ms": {"list_runs": 50, "transition_to_sse": 100, "webhook_to_queued": 50},
        },
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--hooks", type=int, default=200)
    a = ap.parse_args()
    aio.run(main(a.runs, a.requests, a.hooks))
