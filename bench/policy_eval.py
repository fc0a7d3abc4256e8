"""Policy evaluation of the whole built-in library on a generated 1,000-leaf fabric (target
<= 1 s), and the policy + secscan stages on the template repo, in-process (target <= 2 s).

    .venv/bin/python -m bench.policy_eval [--leaves 1000 --hosts 200 --instances 2000 --repeat 5]

Fabric: ``generate_fabric`` written to a temp dir, ``load_model``, ``build_input`` (every
target changed), then one decision over the library. ``eval_isolated`` is what the stage
runs (regorus in a sandboxed child process, input passed as JSON); ``eval_inline`` is the
same evaluation in this process. Template: what each stage does between taking the job and
returning its result (git checkout of the pushed sha, model, input, decision; checkout,
bandit, secret rules), without NATS; the two stages run side by side as two workers would.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import report, workdir
from lintas.engine.gitrepo import MirrorCache
from lintas.engine.settings import Settings
from lintas.workers.model import load_model
from lintas.workers.model.generate import generate_fabric
from lintas.workers.policy.config import PolicySettings
from lintas.workers.policy.input import build_input
from lintas.workers.policy.library import builtin_modules
from lintas.workers.policy.regorus_backend import RegorusEngine
from lintas.workers.policy.stage import PolicyStage
from lintas.workers.secscan.findings import SecscanOptions
from lintas.workers.secscan.scan import scan_repo

ROOT = Path(__file__).resolve().parent.parent
META = {"evaluated_at": "2026-03-02T10:00:00Z", "labels": [], "sha": "0" * 40, "ref": "refs/heads/main"}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time of ``repeat`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def fabric(leaves: int, hosts: int, instances: int, repeat: int) -> dict[str, Any]:
    with workdir() as d:
        for rel, text in generate_fabric(leaves, n_hosts=hosts, n_instances=instances).items():
            p = d / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        t0 = time.perf_counter()
        model = load_model(d)
        load_s = time.perf_counter() - t0
    summary = {"against": "deployed", "new": [], "changed": sorted(model.targets), "removed": [], "unchanged": 0}
    modules = builtin_modules(tests=False)
    data = PolicySettings().data()
    build_s, doc = timed(lambda: build_input(model, plan_summary=summary, meta=META), repeat)
    iso_s, decision = timed(lambda: RegorusEngine().evaluate(modules, doc, data), repeat)
    inline_s, inline = timed(lambda: RegorusEngine(isolated=False).evaluate(modules, doc, data), repeat)
    assert decision == inline
    return {
        "devices": len(model.devices),
        "links": len(model.links),
        "networks": len(model.networks),
        "hosts": len(model.hosts),
        "instances": len(model.instances),
        "policies": len(modules),
        "decision": {
            "deny": len(decision.deny),
            "warn": len(decision.warn),
            "require_approval": len(decision.require_approval),
        },
        "load_model_s": round(load_s, 3),
        "build_input_s": round(build_s, 3),
        "eval_isolated_s": round(iso_s, 3),
        "eval_inline_s": round(inline_s, 3),
        "input_plus_eval_s": round(build_s + iso_s, 3),
    }


def template_repo(d: Path) -> tuple[Path, str]:
    src = d / "src"
    shutil.copytree(ROOT / "gitops-repo-template", src)
    env = {
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@example.invalid",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@example.invalid",
        "PATH": "/usr/bin:/bin",
    }
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "template"]):
        subprocess.run(cmd, cwd=src, check=True, env=env)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, check=True, capture_output=True, text=True).stdout
    return src, sha.strip()


async def template_stages(repeat: int) -> dict[str, Any]:
    with workdir() as d:
        src, sha = template_repo(d)
        settings = Settings(home=d / "home")
        policy = PolicyStage(settings)
        mirror = MirrorCache(d / "cache")
        render = {"against": "deployed", "new": [], "changed": ["leaf-01", "leaf-02"], "removed": [], "unchanged": 6}

        def run_policy(n: int) -> tuple[float, Any]:
            t0 = time.perf_counter()
            root = mirror.checkout(str(src), sha, d / f"w{n}" / "policy")
            prepared = policy.prepare(
                root, sha=sha, before=None, render_summary=render, pushed=True, repo="infra", ref="refs/heads/main"
            )
            return time.perf_counter() - t0, policy.decide(prepared)

        def run_secscan(n: int) -> tuple[float, Any]:
            t0 = time.perf_counter()
            root = mirror.checkout(str(src), sha, d / f"w{n}" / "secscan")
            return time.perf_counter() - t0, scan_repo(root, SecscanOptions())

        both, pol, sec = [], [], []
        for n in range(repeat + 1):  # the first round warms imports and caches, as a running worker is
            t0 = time.perf_counter()
            (p_s, decision), (s_s, scan) = await asyncio.gather(
                asyncio.to_thread(run_policy, n), asyncio.to_thread(run_secscan, n)
            )
            if n:
                both.append(time.perf_counter() - t0)
                pol.append(p_s)
                sec.append(s_s)
        mirror.close()
    return {
        "policy_s": round(statistics.median(pol), 3),
        "secscan_s": round(statistics.median(sec), 3),
        "policy_and_secscan_s": round(statistics.median(both), 3),
        "decision": {"deny": len(decision.deny), "require_approval": len(decision.require_approval)},
        "secscan": {"files": scan.files, "findings": len(scan.findings)},
    }


def main(leaves: int, hosts: int, instances: int, repeat: int) -> None:
    report(
        "policy_eval",
        {
            "fabric": fabric(leaves, hosts, instances, repeat),
            "template": asyncio.run(template_stages(repeat)),
            "target": "fabric input_plus_eval <= 1 s; template policy_and_secscan <= 2 s",
        },
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--leaves", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    main(a.leaves, a.hosts, a.instances, a.repeat)
