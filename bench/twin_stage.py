"""The twin stage (issue 18) on its realistic cases, for real: production already runs a fabric (its
artifacts, switches' and hosts', recorded as the last deployed ones), and the run adds one VNI on
one leaf (as ``bench.deploy_fabric``'s changes do). Each round renders the change and runs the twin
stage: a twin of the change's **slice** built (the leaf, both spines, an unchanged leaf carrying its
VNIs), brought to production's last deployed state, the change deployed through the deploy code
(waves, commit-confirm, health gate), verified, torn down.

``--fabric template``: the template (2 spines x 4 leaves), VNI 10060 on leaf-01 (target: <= 20 s).
``--fabric 2x32``: a generated fabric of 2 spines x 32 leaves, VNI 10990 on leaf-05 (target: <= 25 s).
``--fabric template-host``: the template, leaf-01's host port ``swp1`` given a description (a repo-local
FRR template override): kvm-uat-01 does not change, but its leaf's change reaches it, so the slice
holds it too, started from production's state (its OVS and its two running domains) and probed.

Reports the slice, the stage's parts (build, start, deploy, verify, teardown) and its total, median
and range over ``--rounds``, the highest PSS per twin switch while the twin is up (FRR + sshd, the
configs deployed), with the load average. Needs root, FRR and openssh, not the production lab (a
twin never touches it); run it under ``flock /tmp/lintas-lab.lock`` beside the other lab benches.

    flock /tmp/lintas-lab.lock .venv/bin/python -m bench.twin_stage [--rounds 3] [--fabric 2x32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git

from bench.breakage import port_stanza_override
from bench.common import report, workdir
from bench.twin import twin_pss_mb
from lintas.engine import subjects as S
from lintas.engine.contracts import RenderSummary, TwinSummary
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.settings import Settings
from lintas.engine.stage import StageResult
from lintas.engine.targets import TargetState, TargetStore
from lintas.workers.lab.twin_life import twin_statuses
from lintas.workers.model.generate import generate_fabric
from lintas.workers.render.plan import Plan
from lintas.workers.render.stage import RenderStage
from lintas.workers.twin.stage import TwinStage, twin_name
from tests.policy.stagekit import TEMPLATE, Harness, git_repo, harness

os.environ.setdefault("FABRIC_BGP_PASSWORD", "Lx-" + secrets.token_hex(8))  # what the template's configs reference
PARTS = ("build_s", "start_s", "deploy_s", "verify_s", "teardown_s", "total_s")
NEW_VNI = (
    "\n  - name: bench-twin\n    vrf: UAT\n    vlan: 60\n    vni: 10060\n"
    "    gateway: 10.31.0.1/24\n    mtu: 9000\n    leaves: [leaf-01]\n"
)
CHANGED_2X32 = "leaf-05"
NEW_VNI_2X32 = (  # the generator's networks are VLANs 10.., VNIs 10010.., gateways in 10.32.0.0/16
    "- name: bench-twin\n  vrf: TENANT-A\n  vlan: 990\n  vni: 10990\n"
    f"  gateway: 10.99.0.1/24\n  mtu: 9000\n  leaves: [{CHANGED_2X32}]\n"
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


def _repo(home: Path, fabric: str) -> tuple[Path, str, str, str]:
    """A repo whose first commit production runs and whose last adds one VNI on one leaf:
    ``(repo, base sha, change sha, the changed leaf)``."""
    if fabric == "template":
        tenants = (TEMPLATE / "fabric" / "tenants.yaml").read_text()
        repo, shas = git_repo(home / "repo", {"fabric/tenants.yaml": tenants + NEW_VNI}, message="VNI 10060 on leaf-01")
        return repo, shas[0], shas[-1], "leaf-01"
    if fabric == "template-host":
        override = port_stanza_override("leaf-01", "swp1", " description uplink of kvm-uat-01\n")
        repo, shas = git_repo(home / "repo", {"templates/frr/frr.conf.j2": override}, message="leaf-01: swp1 described")
        return repo, shas[0], shas[-1], "leaf-01"
    files = generate_fabric(32, n_spines=2, vnis_per_leaf=4)
    repo, shas = git_repo(home / "repo", files, message="a generated fabric of 2 spines x 32 leaves")
    (repo / "fabric" / "tenants.yaml").write_text(files["fabric/tenants.yaml"] + NEW_VNI_2X32)
    g = git.Repo(repo)
    g.git.add(A=True)
    g.git.commit(m=f"VNI 10990 on {CHANGED_2X32}")
    change = g.head.commit.hexsha
    g.close()
    return repo, shas[-1], change, CHANGED_2X32


async def _pss_peak(run_id: str, stop: asyncio.Event) -> float:
    """The highest PSS per switch (MB) of the run's twin while it is up (configs deployed included)."""
    peak, name = 0.0, twin_name(run_id)
    while not stop.is_set():
        for st in twin_statuses():
            if st.record is not None and st.record.name == name and st.record.phase == "up" and st.record.switches:
                mb = await asyncio.to_thread(twin_pss_mb, st.record)
                peak = max(peak, mb / len(st.record.switches))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return peak


async def bench(home: Path, rounds: int, fabric: str) -> dict[str, object]:
    server = EmbeddedNats(home / "nats", free_port())
    await server.start()
    settings = Settings(home=home / "home", nats_url=server.url)
    repo, base, change, leaf = _repo(home, fabric)
    runs: list[dict[str, float]] = []
    loads: list[float] = []
    built: list[str] = []
    try:
        async with harness(settings, "r-bench") as h:
            await _deployed(h, repo, base)
            for _ in range(rounds):
                run_id = "r-" + secrets.token_hex(4)
                rendered = await _stage(h, repo, change, "render", run_id, {})
                assert rendered.outcome == "succeeded", rendered.failure
                stop = asyncio.Event()
                pss = asyncio.create_task(_pss_peak(run_id, stop))
                t = time.monotonic()
                try:
                    result = await _stage(h, repo, change, "twin", run_id, {"render": rendered.summary})
                finally:
                    wall = time.monotonic() - t
                    stop.set()
                assert result.outcome == "succeeded", result.failure
                summary = TwinSummary.model_validate(result.summary)
                assert summary.start == "last_deployed" and summary.committed == [leaf], summary
                built = summary.switches + summary.hosts
                assert (fabric == "template-host") == (summary.hosts == ["kvm-uat-01"]), summary.slice
                runs.append(
                    {k: summary.timings[k] for k in PARTS}
                    | {
                        "stage_wall_s": wall,
                        "pss_mb_per_switch_peak": await pss,
                        "switches": len(summary.switches),
                        "hosts": len(summary.hosts),
                    }
                )
                loads.append(os.getloadavg()[0])
    finally:
        await server.stop()
    return (
        {"slice": built}
        | {
            k: {
                "median": round(statistics.median(r[k] for r in runs), 2),
                "min": round(min(r[k] for r in runs), 2),
                "max": round(max(r[k] for r in runs), 2),
            }
            for k in (*PARTS, "stage_wall_s", "pss_mb_per_switch_peak", "switches", "hosts")
        }
        | {"load_1m_per_round": [round(x, 2) for x in loads]}
    )


CASES = {
    "template": "one-VNI change on leaf-01, from the template (2 spines x 4 leaves) deployed",
    "2x32": f"one-leaf change (a VNI on {CHANGED_2X32}), from a generated 2 spines x 32 leaves fabric deployed",
    "template-host": "leaf-01's host port described (template override): kvm-uat-01 unchanged but reached, built",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fabric", choices=sorted(CASES), default="template")
    a = ap.parse_args()
    with workdir() as d:
        result = asyncio.run(bench(d, a.rounds, a.fabric))
    report(
        "twin_stage",
        {"case": CASES[a.fabric], "rounds": a.rounds} | result | {"load_average": os.getloadavg()},
    )


if __name__ == "__main__":
    main()
