"""The most twins this machine holds at once (issue 18), for real.

Production runs the template (its artifacts recorded as the last deployed ones on a private
nats-server); a commit adds one VNI on leaf-01. Twins of that change are built one after another
with ``lintas twin up --ref``'s code (:func:`workers.twin.explore.explore`: the change's slice,
leaf-01, leaf-02 and both spines, started from production's artifacts, the change deployed through
the deploy rollout and verified) and all are held. After each new one, every twin built so far is
read again. It stops at the first of:

- a twin that fails to build, deploy or verify, or takes longer than ``--bound`` seconds;
- a twin held before that lost a session (every twin's ``show bgp summary json`` on each of its
  switches, ``--recheck`` seconds after the new one verified, against what it had right after its
  own verify);
- memory: the next twin (the largest PSS of one so far, times 1.5) would take the machine's used
  memory past ``--max-mem`` (70 % of RAM);
- load: the 1-minute load average above ``--max-load`` before a build;
- ``--cap`` twins (20).

Then every twin is torn down. Reports the count, what stopped it, per twin its time and PSS (and per
switch and per host: the processes of each one's namespace), the total PSS, the memory used and the
load along the way. ``--host``: the change also defines a (stopped) instance on kvm-uat-01, so each
twin holds that host too (with its leaf, leaf-01), started from production's state: libvirtd,
virtlogd, OVS, sshd and QEMU for each of its running domains. Needs root, FRR and openssh, not the
production lab (a twin never touches it); run it under ``flock /tmp/lintas-lab.lock``. The twins are
left up by ``explore`` (as ``twin up --ref``) and torn down by name at the end: a bench killed
midway leaves them, ``lintas twin down --all`` removes them.

    flock /tmp/lintas-lab.lock .venv/bin/python -m bench.twin_capacity [--cap 20] [--host]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import report, workdir
from bench.twin import node_pss_mb, twin_pss_mb
from bench.twin_stage import NEW_VNI
from lintas.engine.app import nats_session
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.errors import LintasError
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.settings import Settings
from lintas.engine.targets import TargetState, TargetStore
from lintas.workers.lab.frr import VTYSH, bgp_peers
from lintas.workers.lab.paths import twin_paths
from lintas.workers.lab.twin import twin_down
from lintas.workers.lab.twin_life import TwinRecord, find_twin
from lintas.workers.render.local import checkout_ref, render_tree
from lintas.workers.twin.explore import Explored, explore
from tests.policy.stagekit import TEMPLATE, git_repo

os.environ.setdefault("FABRIC_BGP_PASSWORD", "Lx-" + secrets.token_hex(8))  # what the template's configs reference
SWITCHES = {"leaf-01", "leaf-02", "leaf-03", "leaf-04", "spine-01", "spine-02"}
# --host: a stopped instance on kvm-uat-01, so the change touches that host (a domain defined, none started)
HOST_INSTANCE = """
  - name: bench-twin-01
    uuid: 5d1e7a30-2b4c-4e8f-9a10-7c6b5a4d3e21
    flavor: lab.nano
    host: kvm-uat-01
    state: stopped
    project: uat-payments
    owner: team-payments
    image: cirros-0.6.2
    nics:
      - network: uat-web
        mac: "fa:16:3e:1a:00:21"
"""


def mem_used_fraction() -> float:
    info = {ln.split(":")[0]: int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()}
    return 1 - info["MemAvailable"] / info["MemTotal"]


def mem_total_mb() -> float:
    return int(Path("/proc/meminfo").read_text().split()[1]) / 1024


async def record_deployed(settings: Settings, repo: Path, ref: str) -> None:
    """``ref`` rendered and recorded as production's last deployed artifacts."""
    with tempfile.TemporaryDirectory() as tmp:
        tree, sha = checkout_ref(repo, ref, Path(tmp))
        _, texts = render_tree(tree, None)
    async with nats_session(settings, name="bench") as (_nc, topo):
        store, targets = NatsArtifactStore(topo.artifacts), TargetStore(topo.targets)
        for name, arts in texts.items():
            await targets.put(
                TargetState(
                    target=name,
                    kind="device" if name in SWITCHES else "host",
                    repo="infra",
                    commit=sha,
                    run_id="r-prod",
                    artifacts={a: await store.put_blob(t.encode()) for a, t in arts.items()},
                    deployed_at=datetime.now(UTC),
                )
            )


async def established(record: TwinRecord) -> set[str]:
    """Every BGP session Established on the twin's switches (``show bgp summary json`` through vtysh on
    each): ``"<switch> <address family> <peer>"``. A spine's sessions to switches out of the slice
    (stub ports) are never Established, so a twin is compared with itself right after it verified."""
    paths = twin_paths(Path(record.home), record.instance)
    up: set[str] = set()
    for sw in record.switches:
        sock = paths.run_dir(sw) / "run"
        proc = await asyncio.create_subprocess_exec(
            VTYSH,
            "--vty_socket",
            str(sock),
            "--config_dir",
            str(sock.parent / "etc"),
            "-c",
            "show bgp summary json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        peers = bgp_peers(json.loads(out or b"{}")) if proc.returncode == 0 else {}
        up |= {f"{sw} {af} {p}" for af, ps in peers.items() for p, st in ps.items() if st == "Established"}
    return up


async def bench(home: Path, a: argparse.Namespace) -> dict[str, Any]:
    server = EmbeddedNats(home / "nats", free_port())
    await server.start()
    settings = Settings(home=home / "home", nats_url=server.url)
    tenants = (TEMPLATE / "fabric" / "tenants.yaml").read_text()
    files = {"fabric/tenants.yaml": tenants + NEW_VNI}
    if a.host:
        files["hosts/instances.yaml"] = (TEMPLATE / "hosts" / "instances.yaml").read_text() + HOST_INSTANCE
    repo, shas = git_repo(
        home / "repo", files, message="VNI 10060 on leaf-01" + (", an instance on kvm-uat-01" * a.host)
    )
    names: list[str] = []
    sessions: dict[str, set[str]] = {}
    twins: list[dict[str, Any]] = []
    stopped = f"the cap of {a.cap} twins"
    total_mb = mem_total_mb()
    start_used = mem_used_fraction()
    try:
        await record_deployed(settings, repo, shas[0])
        for i in range(a.cap):
            load = os.getloadavg()[0]
            need = 1.5 * max((t["pss_mb"] for t in twins), default=400.0) / total_mb
            if mem_used_fraction() + need > a.max_mem:
                stopped = f"memory: {mem_used_fraction():.0%} used + the next twin (~{need:.1%}) > {a.max_mem:.0%}"
                break
            if load > a.max_load:
                stopped = f"load: 1-min load average {load:.1f} > {a.max_load}"
                break
            name = f"cap-{i:02d}"
            t = time.monotonic()
            done: Explored | None = None
            try:
                done = await asyncio.wait_for(explore(settings, repo, shas[-1], name=name), a.bound)
            except TimeoutError:
                stopped = f"twin {i + 1} did not build and settle within {a.bound} s"
            except LintasError as exc:
                stopped = f"twin {i + 1} failed to build: {exc}"
            if any(r.name == name for r in _live()):
                names.append(name)  # built (whatever happened after): torn down below
            if done is None:
                break
            took = time.monotonic() - t
            if done.failure is not None:
                stopped = f"twin {i + 1} failed: {done.failure[:300]}"
                break
            record = find_twin(name)
            pss, per_node = twin_pss_mb(record), node_pss_mb(record)
            sessions[name] = await established(record)  # just verified: these are its sessions
            await asyncio.sleep(a.recheck)
            broken = {n: sorted(sessions[n] - await established(find_twin(n))) for n in names}
            broken = {n: b for n, b in broken.items() if b}
            twins.append(
                {
                    "name": name,
                    "switches": len(record.switches),
                    "hosts": record.hosts,
                    "seconds": round(took, 1),
                    "phases": done.report.timings(),
                    "pss_mb": round(pss, 1),
                    "pss_mb_per_switch": round(sum(per_node[n] for n in record.switches) / len(record.switches), 1),
                    "pss_mb_per_host": {h: round(per_node[h], 1) for h in record.hosts},
                    "sessions_established": len(sessions[name]),
                    "load_1m": round(os.getloadavg()[0], 2),
                    "mem_used": round(mem_used_fraction(), 3),
                }
            )
            print(json.dumps(twins[-1]), flush=True)
            if broken:
                stopped = f"after twin {i + 1}, sessions not Established: {json.dumps(broken)[:400]}"
                break
        held_pss = sum(twin_pss_mb(find_twin(n)) for n in names if any(r.name == n for r in _live()))
        peak_used = mem_used_fraction()
    finally:
        t = time.monotonic()
        for n in names:
            try:
                await twin_down(settings, n)
            except Exception as exc:  # noqa: BLE001 - tear down the rest whatever one did
                print(f"twin down {n}: {exc}")
        down_s = time.monotonic() - t
        await server.stop()
    return {
        "twins_held": len(twins),
        "stopped_by": stopped,
        "total_pss_mb_all_held": round(held_pss, 1),
        "pss_mb_per_twin_median": sorted(t["pss_mb"] for t in twins)[len(twins) // 2] if twins else None,
        "mem_total_mb": round(total_mb),
        "mem_used_before": round(start_used, 3),
        "mem_used_with_all": round(peak_used, 3),
        "teardown_all_s": round(down_s, 1),
        "twins": twins,
    }


def _live() -> list[TwinRecord]:
    from lintas.workers.lab.twin_life import twin_statuses

    return [st.record for st in twin_statuses() if st.record is not None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cap", type=int, default=20)
    ap.add_argument("--bound", type=float, default=120.0, help="seconds for one twin to build, deploy and verify")
    ap.add_argument("--max-mem", type=float, default=0.70, help="fraction of RAM used never to exceed")
    ap.add_argument("--max-load", type=float, default=12.0, help="1-minute load average above which no twin is built")
    ap.add_argument("--recheck", type=float, default=2.0, help="seconds before every held twin's sessions are read")
    ap.add_argument("--host", action="store_true", help="the change also touches kvm-uat-01: each twin holds that host")
    a = ap.parse_args()
    load_before = os.getloadavg()
    with workdir() as d:
        result = asyncio.run(bench(d, a))
    report(
        "twin_capacity",
        {
            "case": "one-VNI slice of the template (4 switches)"
            + (" and an instance on kvm-uat-01 (the host with its leaf)" if a.host else "")
            + ", each twin deployed and verified, all held"
        }
        | {"cap": a.cap, "bound_s": a.bound, "max_mem": a.max_mem, "max_load": a.max_load}
        | result
        | {"load_average_before": load_before, "load_average_after": os.getloadavg()},
    )


if __name__ == "__main__":
    main()
