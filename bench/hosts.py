"""Hypervisor host benchmarks (issue 6), on the real lab (libvirtd + QEMU/KVM, Open vSwitch netdev).

Needs root and no other lab up: it brings the template's lab up and down itself.

``deploy``: ``--instances`` (default 20) ``lab.nano`` instances (64 MiB, 1 vCPU, one NIC on
br-int) added to the plain KVM host ``kvm-uat-01``, applied through the deploy stage's own
host code (:func:`workers.hosts.ops.take_snapshot` + :func:`workers.hosts.ops.apply`: OVSDB
converge, tunnel address over SSH, libvirt over ``qemu+libssh``: define + start) at each
``--parallelism`` (domains changed at once on the host); after each, the run's snapshot is
restored (the domains destroyed and undefined) so every round starts from the same state.

``drift``: one host drift read (:func:`workers.hosts.ops.drift`: OVSDB, addresses, every
domain's definition) of each host, with 0 and with ``--instances`` domains defined, to
show how a host's scan grows with its domains. The whole-lab scan through the pipeline
(switches and hosts in the target store) is ``bench.deploy_fabric`` (``drift_scan``).

    .venv/bin/python -m bench.hosts [--instances 20] [--parallelism 1 4 8]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import report, workdir
from lintas.engine.infra_repo import TEMPLATE_DIR
from lintas.engine.settings import Settings
from lintas.workers.hosts import ops
from lintas.workers.hosts.connect import HostConn, host_conns
from lintas.workers.lab import lab_down, lab_up
from lintas.workers.model import InfraModel, load_model
from lintas.workers.render.env import Renderer
from lintas.workers.render.targets import render_targets

HOST = "kvm-uat-01"


def with_instances(root: Path, n: int) -> Path:
    """A copy of the template with ``n`` running lab.nano instances added on kvm-uat-01."""
    out = root / f"repo-{n}"
    shutil.copytree(TEMPLATE_DIR, out, dirs_exist_ok=True)
    with (out / "hosts" / "instances.yaml").open("a") as f:
        for i in range(n):
            f.write(
                f"\n  - name: bench-{i:02d}\n    uuid: b0000000-0000-4000-8000-{i:012d}\n    flavor: lab.nano\n"
                f"    host: {HOST}\n    state: running\n    project: bench\n    owner: bench\n"
                f'    nics:\n      - network: uat-web\n        mac: "fa:16:3e:b0:00:{i:02x}"\n'
            )
    return out


def _bundles(repo: Path) -> tuple[InfraModel, dict[str, dict[str, str]]]:
    model = load_model(repo)
    return model, render_targets(model, sorted(model.hosts), Renderer(repo))


def _conn(settings: Settings, model: InfraModel) -> HostConn:
    return host_conns(model, settings, [HOST])[HOST]


def deploy_rounds(settings: Settings, d: Path, n: int, parallelisms: list[int]) -> list[dict[str, Any]]:
    _base, base_bundles = _bundles(TEMPLATE_DIR)
    model, bundles = _bundles(with_instances(d, n))
    bundle = bundles[HOST]
    conn = _conn(settings, model)
    timeout = float(settings.deploy.connect_timeout_s)
    # day 1 without the bench instances: the host's own networking and the template's domains
    ops.apply(
        conn, base_bundles[HOST], None, allow_deletions=False, shutdown_timeout_s=0, parallelism=4, timeout_s=timeout
    )
    out = []
    for p in parallelisms:
        snap = ops.take_snapshot(conn, bundle, None, timeout)
        t0 = time.monotonic()
        applied = ops.apply(
            conn, bundle, None, allow_deletions=False, shutdown_timeout_s=0, parallelism=p, timeout_s=timeout
        )
        took = time.monotonic() - t0
        problems = [c for c in ops.checks(conn, bundle, deletions_allowed=False, timeout_s=timeout) if not c.passed]
        started = sum(1 for c in applied.changes if c.endswith(": started") and "bench-" in c)
        t1 = time.monotonic()
        ops.restore(conn, snap, bundle, shutdown_timeout_s=0, timeout_s=timeout, parallelism=p)
        out.append(
            {
                "parallelism": p,
                "instances": n,
                "started": started,
                "deploy_s": round(took, 2),
                "per_instance_ms": round(took / max(n, 1) * 1000, 1),
                "failing_checks": len(problems),
                "restore_s": round(time.monotonic() - t1, 2),
            }
        )
        print(out[-1], flush=True)
    return out


def drift_reads(settings: Settings, d: Path, n: int, repeats: int = 5) -> dict[str, Any]:
    base, base_bundles = _bundles(TEMPLATE_DIR)
    model, more_bundles = _bundles(with_instances(d, n))
    timeout = float(settings.deploy.connect_timeout_s)
    out: dict[str, Any] = {}
    conns = host_conns(model, settings, sorted(model.hosts))
    for label, m, bundles in (("template domains", base, base_bundles), (f"+{n} domains", model, more_bundles)):
        snap = ops.take_snapshot(conns[HOST], bundles[HOST], None, timeout)
        ops.apply(
            conns[HOST],
            bundles[HOST],
            None,
            allow_deletions=False,
            shutdown_timeout_s=0,
            parallelism=8,
            timeout_s=timeout,
        )
        for host, conn in conns.items():
            times = []
            for _ in range(repeats):
                t0 = time.monotonic()
                ops.drift(conn, bundles[host], timeout)
                times.append(time.monotonic() - t0)
            out[f"{host} ({label})"] = {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)}
        if m is model:
            ops.restore(conns[HOST], snap, bundles[HOST], shutdown_timeout_s=0, timeout_s=timeout)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=20)
    ap.add_argument("--parallelism", type=int, nargs="+", default=[1, 4, 8])
    a = ap.parse_args()
    with workdir() as d:
        settings = Settings(home=d / "home")
        asyncio.run(lab_up(settings, TEMPLATE_DIR))
        try:
            result: dict[str, object] = {
                "deploy": deploy_rounds(settings, d, a.instances, a.parallelism),
                "drift_read": drift_reads(settings, d, a.instances),
            }
        finally:
            asyncio.run(lab_down(settings))
    report("hosts", result)


if __name__ == "__main__":
    main()
