"""Lab switch memory and bring-up time (issue 5): a generated 2 x N fabric, for real.

Brings the lab up from ``generate_fabric(N)`` (default N=32 leaves, 2 spines), measures
each switch's processes (zebra + bgpd + bfdd + sshd in its namespace: RSS, and PSS,
which splits shared library pages fairly), then loads every switch's rendered frr.conf
(dummy BGP password), waits for every BGP session to be Established and measures again,
and tears the lab down. Needs root, FRR and openssh, and no other lab up.

    .venv/bin/python -m bench.lab_memory [--leaves 32] [--spines 2] [--no-bgp] [--template]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from bench.common import report, workdir
from lintas.engine.infra_repo import TEMPLATE_DIR
from lintas.engine.settings import Settings
from lintas.workers.drivers.frr.secret_tokens import resolve_secrets
from lintas.workers.lab import bgp_peers, lab_device_facts, lab_down, lab_up, vtysh_json
from lintas.workers.lab.cmd import find_tools, gather_limited, run
from lintas.workers.lab.netns import namespace_inodes, pids_in
from lintas.workers.model import load_model
from lintas.workers.model.generate import generate_fabric
from lintas.workers.render.env import Renderer
from lintas.workers.render.network import render_device


def _kb(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(namespaces: list[str]) -> dict[str, object]:
    per_switch_rss: list[float] = []
    per_switch_pss: list[float] = []
    per_daemon: dict[str, list[float]] = {}
    for ino in namespace_inodes(namespaces):
        rss = pss = 0
        for pid in pids_in({ino}):
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except FileNotFoundError:  # a short-lived process (a shell of an SSH exec) ended meanwhile
                continue
            r = _kb(f"/proc/{pid}/status", "VmRSS")
            rss += r
            pss += _kb(f"/proc/{pid}/smaps_rollup", "Pss")
            per_daemon.setdefault(comm, []).append(r / 1024)
        per_switch_rss.append(rss / 1024)
        per_switch_pss.append(pss / 1024)
    return {
        "switches": len(per_switch_rss),
        "rss_mb_per_switch_mean": round(statistics.fmean(per_switch_rss), 1),
        "rss_mb_per_switch_max": round(max(per_switch_rss), 1),
        "pss_mb_per_switch_mean": round(statistics.fmean(per_switch_pss), 1),
        "rss_mb_total": round(sum(per_switch_rss), 1),
        "pss_mb_total": round(sum(per_switch_pss), 1),
        "rss_mb_per_daemon_mean": {k: round(statistics.fmean(v), 1) for k, v in sorted(per_daemon.items())},
    }


async def load_rendered(repo: Path, settings: Settings) -> None:
    model = load_model(repo)
    renderer = Renderer(repo)
    tools = find_tools()

    async def one(name: str) -> None:
        conf = resolve_secrets(render_device(model, name, renderer)["frr.conf"], lambda ref: "Bench-Dummy-Pw-1")
        f = lab_device_facts(settings, name)
        path = f.config_dir.parent / "bench.conf"
        path.write_text(conf)
        await run(
            [tools.vtysh, "--vty_socket", str(f.vty_socket_dir), "--config_dir", str(f.config_dir), "-f", str(path)],
            timeout=120,
        )

    await gather_limited(16, (one(n) for n in model.devices if model.devices[n].platform == "frr"))


async def wait_established(devices: list[str], timeout_s: float = 180.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout_s
    up = total = 0
    while time.monotonic() < deadline:
        sums = await gather_limited(16, (vtysh_json(d, "show bgp summary json") for d in devices))
        states = [s for summary in sums for af in bgp_peers(summary).values() for s in af.values()]
        up, total = sum(s == "Established" for s in states), len(states)
        if total and up == total:
            break
        await asyncio.sleep(1.0)
    return up, total


async def bench(repo: Path, home: Path, bgp: bool) -> dict[str, object]:
    settings = Settings(home=home)
    out: dict[str, object] = {}
    try:
        t0 = time.perf_counter()
        state = await lab_up(settings, repo)
        out["lab_up_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        await lab_up(settings, repo)
        out["lab_up_again_s"] = round(time.perf_counter() - t0, 2)
        namespaces = [s.namespace for s in state.switches.values()]
        out["day0"] = measure(namespaces)
        if bgp:
            t0 = time.perf_counter()
            await load_rendered(repo, settings)
            up, total = await wait_established(sorted(state.switches))
            out["bgp_sessions_established"] = f"{up}/{total}"
            out["config_to_established_s"] = round(time.perf_counter() - t0, 2)
            out["bgp_converged"] = measure(namespaces)
    finally:
        t0 = time.perf_counter()
        await lab_down(settings)
        out["lab_down_s"] = round(time.perf_counter() - t0, 2)
    return out


def main(leaves: int, spines: int, bgp: bool, template: bool) -> None:
    with workdir() as d:
        if template:
            repo = TEMPLATE_DIR
        else:
            repo = d / "repo"
            for rel, text in generate_fabric(leaves, n_spines=spines).items():
                (repo / rel).parent.mkdir(parents=True, exist_ok=True)
                (repo / rel).write_text(text)
        result = asyncio.run(bench(repo, d / "home", bgp))
    fabric = "template (2 spines x 4 leaves)" if template else f"{spines} spines x {leaves} leaves"
    report("lab_memory", {"fabric": fabric, **result})


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--leaves", type=int, default=32)
    ap.add_argument("--spines", type=int, default=2)
    ap.add_argument("--no-bgp", action="store_true", help="measure day 0 only")
    ap.add_argument("--template", action="store_true", help="the built-in template's lab instead of a generated one")
    a = ap.parse_args()
    main(a.leaves, a.spines, not a.no_bgp, a.template)
