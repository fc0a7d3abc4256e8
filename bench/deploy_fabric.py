"""Fabric deploy benchmarks (issue 5), on the real lab. Needs root, FRR, openssh, no other lab up.

``pipeline`` (default): the template's 2 spines x 4 leaves, a real nats-server and a real
`lintas up`. After the first deploy, ``--changes`` one-VNI changes (a new VNI on
leaf-01, so no approval is asked) are pushed with `git push`; for each, push-to-verified
is split into

* stage time: the union of the intervals during which a stage ran (validate ... verify);
  of it, device time = deploy + verify (commits, health gate, BGP/EVPN convergence, checks);
* engine overhead: everything else (hook -> event -> run -> jobs -> results -> next stage).

Then ``--breaks`` changes that cannot converge (a repo-local template that makes leaf-04
filter every EVPN route it sends: valid for the model, fatal for the overlay, nothing changes
after the first seconds): push -> failure detected (verify finished, failed), push -> restored
and re-verified (rollback finished), rollback time = from verify failing to rollback finished,
and which signal ended verify (issue 16). ``lintas up`` runs with ``--verify-timeout`` (default
90 s, the product's default), so a verify that waits for its timeout shows.

The first deploy is followed by a drift scan of the whole lab (6 switches + 2 hosts), 5 times.

``fanout``: a generated fabric of 2 spines and ``--leaves`` + 1 leaves. The day-1 commit
(through the deploy stage's own code: nornir + the napalm frr driver, commit with a
revert timer, then confirm) to one leaf, then to ``--leaves`` other leaves at
``--parallelism``; reports the ratio and the memory per lab switch.

    .venv/bin/python -m bench.deploy_fabric [--changes 5] [--breaks 2] [--verify-timeout 90]
    .venv/bin/python -m bench.deploy_fabric fanout [--leaves 32] [--parallelism 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.breakage import write_evpn_filter
from bench.common import ROOT, init_without_twin, report, workdir
from bench.lab_memory import measure
from lintas.engine.infra_repo import TEMPLATE_DIR
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.settings import Settings
from lintas.workers.deploy import ops
from lintas.workers.deploy.fleet import Fleet
from lintas.workers.lab import lab_down, lab_up
from lintas.workers.model import load_model
from lintas.workers.model.generate import generate_fabric
from lintas.workers.render.env import Renderer
from lintas.workers.render.network import render_device

PASSWORD = "Bench-bgp-" + os.urandom(4).hex()
os.environ.setdefault("FABRIC_BGP_PASSWORD", PASSWORD)  # what the template's configs reference
PASSWORD = os.environ["FABRIC_BGP_PASSWORD"]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    hz = float(os.sysconf("SC_CLK_TCK"))
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / hz, sum(fields) / hz


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


class Lintas:
    def __init__(self, home: Path, work: Path, nats: EmbeddedNats, verify_timeout: int = 90) -> None:
        self.work = work
        self.env = {
            **os.environ,
            "LINTAS_HOME": str(home),
            "LINTAS_NATS_URL": nats.url,
            "LINTAS_API_ADDR": f"127.0.0.1:{free_port()}",
            "FABRIC_BGP_PASSWORD": PASSWORD,
            "LINTAS_DEPLOY__VERIFY_TIMEOUT_S": str(verify_timeout),
            "LINTAS_DEPLOY__REVERT_IN_S": str(verify_timeout + 60),
            "GIT_AUTHOR_NAME": "Bench",
            "GIT_AUTHOR_EMAIL": "bench@example.invalid",
            "GIT_COMMITTER_NAME": "Bench",
            "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        }
        self.log = open(home.parent / "up.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lintas.engine.cli.main", "up"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self.seen: set[str] = set()
        while self.cli("runs", "--json", check=False).returncode != 0:
            time.sleep(0.3)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lintas.engine.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            cwd=ROOT,
        )

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.work, env=self.env, capture_output=True, text=True, check=True
        ).stdout.strip()

    def new_run(self, sha: str) -> str:
        while True:
            for r in json.loads(self.cli("runs", "--json", "--limit", "500").stdout):
                if r["sha"] == sha and r["run_id"] not in self.seen:
                    self.seen.add(r["run_id"])
                    return str(r["run_id"])
            time.sleep(0.05)

    def drive(self, run_id: str) -> dict[str, Any]:
        while True:
            run = json.loads(self.cli("show", run_id, "--json").stdout)
            if run["state"] == "waiting_approval":
                self.cli("approve", run_id)
            elif run["state"] in ("succeeded", "failed", "rolled_back", "canceled", "superseded"):
                return dict(run)
            time.sleep(0.2)

    def push(self, message: str) -> tuple[float, str]:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        t = time.time()
        self.git("push", "-q", "origin", "HEAD:main")
        return t, self.git("rev-parse", "HEAD")


def drift_scans(settings: Settings, repeats: int = 3) -> dict[str, Any]:
    """Time full drift scans (read-only: every deployed switch compared with its last deploy)."""
    from lintas.engine.app import nats_session
    from lintas.engine.gitrepo import MirrorCache
    from lintas.workers.deploy.drift import scan

    async def main() -> dict[str, Any]:
        async with nats_session(settings, name="bench-drift") as (_nc, topo):
            mirror = MirrorCache(settings.cache_dir)
            times, report = [], None
            try:
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    report = await scan(settings, topo, mirror)
                    times.append(time.perf_counter() - t0)
            finally:
                mirror.close()
            assert report is not None
            return {
                "targets": len(report.targets),
                "states": report.counts(),
                "median_s": round(statistics.median(times), 2),
                "max_s": round(max(times), 2),
            }

    return asyncio.run(main())


def _stages(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in run["stages"]}


def _spread(values: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "runs": len(values),
    }


def pipeline_bench(changes: int, breaks: int, verify_timeout: int = 90) -> dict[str, Any]:
    out: dict[str, Any] = {"fabric": "template: 2 spines x 4 leaves", "verify_timeout_s": verify_timeout}
    with workdir() as d:
        settings = Settings(home=d / "home")
        nats = EmbeddedNats(d / "nats", free_port())
        asyncio.run(nats.start())
        asyncio.run(lab_up(settings, TEMPLATE_DIR))
        lx = Lintas(settings.home, d / "demo", nats, verify_timeout)
        try:
            init_without_twin(lx.work, lx.env)  # deploy and verify are measured: no twin before deploy
            first = lx.drive(lx.new_run(lx.git("rev-parse", "HEAD")))
            assert first["state"] == "succeeded", first["error"]
            out["first_deploy_s"] = round(
                _stages(first)["deploy"]["duration_s"] + _stages(first)["verify"]["duration_s"], 2
            )
            out["drift_scan"] = drift_scans(Settings(home=settings.home, nats_url=nats.url), repeats=5)
            rows = []
            for i in range(changes):
                vlan, vni = 60 + i, 10060 + i
                tenants = lx.work / "fabric" / "tenants.yaml"
                tenants.write_text(
                    tenants.read_text() + f"\n  - name: bench-{i}\n    vrf: UAT\n    vlan: {vlan}\n"
                    f"    vni: {vni}\n    gateway: 10.31.{i}.1/24\n    mtu: 9000\n    leaves: [leaf-01]\n"
                )
                pushed, sha = lx.push(f"bench: VNI {vni} on leaf-01")
                run = lx.drive(lx.new_run(sha))
                assert run["state"] == "succeeded", run["error"]
                st = _stages(run)
                created, finished = _ts(run["created_at"]), _ts(run["finished_at"])
                ran = _union([(_ts(s["started_at"]), _ts(s["finished_at"])) for s in st.values() if s["started_at"]])
                device = st["deploy"]["duration_s"] + st["verify"]["duration_s"]
                rows.append(
                    {
                        "total_s": finished - pushed,
                        "push_to_run_s": created - pushed,
                        "engine_s": (finished - created) - ran,
                        "stages_s": ran,
                        "device_s": device,
                        "deploy_s": st["deploy"]["duration_s"],
                        "verify_s": st["verify"]["duration_s"],
                    }
                )
                vs = st["verify"].get("summary") or {}
                for k, v in {**(vs.get("phases") or {}), **(vs.get("timings") or {})}.items():
                    rows[-1][f"verify_{k}"] = float(v)  # where verify's time went (issue 16)
                rows[-1]["verify_reads"] = float(vs.get("reads", 0))
                order = sorted((s for s in st.values() if s["started_at"]), key=lambda s: _ts(s["started_at"]))
                rows[-1]["timeline"] = [
                    (s["name"], round(_ts(s["started_at"]) - created, 3), round(_ts(s["finished_at"]) - created, 3))
                    for s in order
                ]
            out["one_vni_change"] = {
                k: {
                    "median": round(statistics.median(r[k] for r in rows), 3),
                    "min": round(min(r[k] for r in rows), 3),
                    "max": round(max(r[k] for r in rows), 3),
                }
                for k in rows[0]
                if k != "timeline" and all(k in r for r in rows)
            }
            out["one_vni_change"]["slowest_timeline"] = max(rows, key=lambda r: r["engine_s"])["timeline"]
            out["one_vni_change"]["runs"] = len(rows)
            rb: list[float] = []
            detected: list[float] = []
            restored: list[float] = []
            endings: list[Any] = []
            for i in range(breaks):
                write_evpn_filter(lx.work, "leaf-04")
                pushed, sha = lx.push(f"bench: break leaf-04 ({i}): a template that filters its EVPN routes")
                run = lx.drive(lx.new_run(sha))
                assert run["state"] == "rolled_back", run["error"]
                st = _stages(run)
                rb.append(_ts(st["rollback"]["finished_at"]) - _ts(st["verify"]["finished_at"]))
                detected.append(_ts(st["verify"]["finished_at"]) - pushed)
                restored.append(_ts(st["rollback"]["finished_at"]) - pushed)
                endings.append((st["verify"].get("summary") or {}).get("ended_by"))
                lx.git("rm", "-q", "-r", "templates/frr")
                back = lx.drive(lx.new_run(lx.push("bench: unbreak")[1]))
                assert back["state"] == "succeeded", back["error"]
            if rb:
                out["rollback_failed_check_to_reverified_s"] = _spread(rb)
                out["non_converging_change"] = {
                    "push_to_failure_detected_s": _spread(detected),
                    "push_to_restored_and_reverified_s": _spread(restored),
                    "verify_ended_by": endings,
                }
        finally:
            lx.stop()
            asyncio.run(lab_down(settings))
            asyncio.run(nats.stop())
    return out


def _drift_after_fanout(d: Path, repo: Path, settings: Settings, bundles: dict[str, dict[str, str]]) -> Any:
    """Record what the fan-out deployed as Lintas would (artifacts + target store), then scan."""
    from datetime import UTC, datetime

    from lintas.engine.app import nats_session
    from lintas.engine.artifacts import NatsArtifactStore
    from lintas.engine.repos import RepoEntry, RepoRegistry
    from lintas.engine.targets import TargetState, TargetStore

    git = ["git", "-C", str(repo), "-c", "user.name=Bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fabric"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    RepoRegistry(settings.home).add(RepoEntry(name="bench", url=str(repo)))
    nats = EmbeddedNats(d / "nats", free_port())
    asyncio.run(nats.start())
    with_nats = Settings(home=settings.home, nats_url=nats.url)

    async def record() -> None:
        async with nats_session(with_nats, name="bench") as (_nc, topo):
            store = NatsArtifactStore(topo.artifacts)
            for name, parts in bundles.items():
                ids = {a: await store.put_blob(t.encode()) for a, t in parts.items()}
                await TargetStore(topo.targets).put(
                    TargetState(
                        target=name,
                        kind="device",
                        repo="bench",
                        commit=sha,
                        run_id="bench",
                        artifacts=ids,
                        deployed_at=datetime.now(UTC),
                    )
                )

    async def fingerprint() -> None:
        async with nats_session(with_nats, name="bench") as (_nc, topo):
            model = load_model(repo)
            fleet = Fleet(model, settings, sorted(bundles))
            try:
                prints = await fleet.run(sorted(bundles), ops.running_fingerprint)
            finally:
                fleet.close()
            store = TargetStore(topo.targets)
            for name, r in prints.items():
                st = await store.get(name)
                assert st is not None and r.ok
                await store.put(st.model_copy(update={"fingerprint": r.value}))

    try:
        asyncio.run(record())
        full = drift_scans(with_nats)
        asyncio.run(fingerprint())
        return {"full_compare": full, "fingerprint_fast_path": drift_scans(with_nats)}
    finally:
        asyncio.run(nats.stop())


def fanout_bench(leaves: int, parallelism: int) -> dict[str, Any]:
    with workdir() as d:
        repo = d / "repo"
        for rel, text in generate_fabric(leaves + 1, n_spines=2, vnis_per_leaf=4).items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(text)
        model = load_model(repo)
        renderer = Renderer(repo)
        settings = Settings(home=d / "home")
        all_leaves = sorted(n.name for n in model.leaves)
        single, many = all_leaves[:1], all_leaves[1 : leaves + 1]
        out: dict[str, Any] = {"fabric": f"2 spines x {len(all_leaves)} leaves (generated)", "parallelism": parallelism}
        try:
            state = asyncio.run(lab_up(settings, repo))
            bundles = {n: render_device(model, n, renderer) for n in single + many}

            async def commit(names: list[str]) -> float:
                fleet = Fleet(model, settings, names, parallelism=parallelism)
                try:
                    r0 = resource.getrusage(resource.RUSAGE_SELF)
                    c0, t0 = _cpu(), time.perf_counter()
                    res = await fleet.run(
                        names,
                        ops.apply,
                        bundles=bundles,
                        revert_in=600,
                        message=ops.commit_message("r-bench", "0" * 8, "bench", "main"),
                        fence=lambda _n: None,
                        run_id="r-bench",
                    )
                    took = time.perf_counter() - t0
                    c1, r1 = _cpu(), resource.getrusage(resource.RUSAGE_SELF)
                    cpu[len(names)] = (
                        round(c1[0] - c0[0], 1),
                        round((c1[0] - c0[0]) / (c1[1] - c0[1]), 2),
                        round(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, 2),
                    )
                    bad = {n: r.error for n, r in res.items() if not r.ok or r.value is None or not r.value.changed}
                    assert not bad, bad
                    await fleet.run(
                        names,
                        ops.confirm,
                        run_id="r-bench",
                        checkpoints={n: r.value.checkpoint for n, r in res.items() if r.value},
                    )
                    return took
                finally:
                    fleet.close()

            cpu: dict[int, tuple[float, float, float]] = {}
            one = asyncio.run(commit(single))
            fan = asyncio.run(commit(many))
            out.update(
                {
                    "single_device_s": round(one, 2),
                    f"{len(many)}_devices_s": round(fan, 2),
                    "ratio": round(fan / one, 2),
                    "cpu": {
                        f"{n} device(s)": {"machine_cpu_s": v[0], "machine_busy": v[1], "lintas_cpu_s": v[2]}
                        for n, v in cpu.items()
                    },
                    "cores": os.cpu_count(),
                }
            )
            out["memory"] = measure([s.namespace for s in state.switches.values()])
            out["drift_scan"] = _drift_after_fanout(d, repo, settings, bundles)
        finally:
            asyncio.run(lab_down(settings))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", default="pipeline", choices=["pipeline", "fanout"])
    ap.add_argument("--changes", type=int, default=5)
    ap.add_argument("--breaks", type=int, default=2)
    ap.add_argument("--leaves", type=int, default=32)
    ap.add_argument("--parallelism", type=int, default=16)
    ap.add_argument("--verify-timeout", type=int, default=90, help="LINTAS_DEPLOY__VERIFY_TIMEOUT_S for `lintas up`")
    a = ap.parse_args()
    if a.mode == "pipeline":
        report("deploy_pipeline", pipeline_bench(a.changes, a.breaks, a.verify_timeout))
    else:
        report("deploy_fanout", fanout_bench(a.leaves, a.parallelism))
