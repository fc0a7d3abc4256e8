"""The twin stage (issue 18) on its realistic case, for real: production already runs the template
(its artifacts recorded as the last deployed ones), and the run adds one VNI on leaf-01 (as
``bench.deploy_fabric``'s changes do). Each round renders the change and runs the twin stage: a
twin of the template's 6 switches built, brought to production's last deployed state, the change
deployed through the deploy code (waves, commit-confirm, health gate), verified, torn down.

Reports the stage's parts (build, start, deploy, verify, teardown) and its total, median and range
over ``--rounds``, with the load average. Needs root, FRR and openssh, not the production lab (a
twin never touches it); run it under ``flock /tmp/lintas-lab.lock`` beside the other lab benches.

    flock /tmp/lintas-lab.lock .venv/bin/python -m bench.twin_stage [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import report, workdir
from lintas.engine import subjects as S
from lintas.engine.contracts import RenderSummary, TwinSummary
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.settings import Settings
from lintas.engine.stage import StageResult
from lintas.engine.targets import TargetState, TargetStore
from lintas.workers.render.plan import Plan
from lintas.workers.render.stage import RenderStage
from lintas.workers.twin.stage import TwinStage
from tests.policy.stagekit import TEMPLATE, Harness, git_repo, harness

os.environ.setdefault("FABRIC_BGP_PASSWORD", "Lx-" + secrets.token_hex(8))  # what the template's configs reference
PARTS = ("build_s", "start_s", "deploy_s", "verify_s", "teardown_s", "total_s")
NEW_VNI = (
    "\n  - name: bench-twin\n    vrf: UAT\n    vlan: 60\n    vni: 10060\n"
    "    gateway: 10.31.0.1/24\n    mtu: 9000\n    leaves: [leaf-01]\n"
)


async def _stage(
    h: Harness, repo: Path, sha: str, stage: str, run_id: str, inputs: dict[str, dict[str, Any]]
) -> StageResult:
    ctx = h.context(repo, sha, stage=stage, run_id=run_id, inputs=inputs)
    return await (RenderStage if stage == "render" else TwinStage)(h.settings).run(ctx)


async def _deployed(h: Harness, repo: Path, sha: str) -> None:
    """The template rendered and recorded as production's last deployed artifacts."""
    run_id = "r-prod-" + secrets.token_hex(3)
    base = await _stage(h, repo, sha, "render", run_id, {})
    assert base.outcome == "succeeded", base.failure
    raw = await h.doc(RenderSummary.model_validate(base.summary).plan or S.plan_doc(run_id))
    assert raw is not None
    store = TargetStore(h.topo.targets)
    for name, tp in Plan.model_validate(json.loads(raw)).targets.items():  # hosts too: all of it runs
        await store.put(
            TargetState(
                target=name,
                kind=tp.kind or "device",
                repo="infra",
                commit=sha,
                run_id=run_id,
                artifacts=tp.artifacts,
                deployed_at=datetime.now(UTC),
            )
        )


async def bench(home: Path, rounds: int) -> dict[str, object]:
    server = EmbeddedNats(home / "nats", free_port())
    await server.start()
    settings = Settings(home=home / "home", nats_url=server.url)
    tenants = (TEMPLATE / "fabric" / "tenants.yaml").read_text()
    repo, shas = git_repo(home / "repo", {"fabric/tenants.yaml": tenants + NEW_VNI}, message="VNI 10060 on leaf-01")
    runs: list[dict[str, float]] = []
    loads: list[float] = []
    try:
        async with harness(settings, "r-bench") as h:
            await _deployed(h, repo, shas[0])
            for _ in range(rounds):
                run_id = "r-" + secrets.token_hex(4)
                rendered = await _stage(h, repo, shas[-1], "render", run_id, {})
                assert rendered.outcome == "succeeded", rendered.failure
                t = time.monotonic()
                result = await _stage(h, repo, shas[-1], "twin", run_id, {"render": rendered.summary})
                wall = time.monotonic() - t
                assert result.outcome == "succeeded", result.failure
                summary = TwinSummary.model_validate(result.summary)
                assert summary.start == "last_deployed" and summary.committed == ["leaf-01"], summary
                runs.append({k: summary.timings[k] for k in PARTS} | {"stage_wall_s": wall})
                loads.append(os.getloadavg()[0])
    finally:
        await server.stop()
    return {
        k: {
            "median": round(statistics.median(r[k] for r in runs), 2),
            "min": round(min(r[k] for r in runs), 2),
            "max": round(max(r[k] for r in runs), 2),
        }
        for k in (*PARTS, "stage_wall_s")
    } | {"load_1m_per_round": [round(x, 2) for x in loads]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    with workdir() as d:
        result = asyncio.run(bench(d, a.rounds))
    report(
        "twin_stage",
        {"case": "one-VNI change on leaf-01, from the template deployed", "rounds": a.rounds}
        | result
        | {"load_average": os.getloadavg()},
    )


if __name__ == "__main__":
    main()
