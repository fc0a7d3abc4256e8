"""What deploy, verify and rollback share: the model at a commit, leases, the hosts' verify loop (the
fabric's is :mod:`workers.deploy.fabric_verify`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from lintas.engine.artifacts import ArtifactStore
from lintas.engine.errors import InputError
from lintas.engine.locks import Lease, LeaseLocks
from lintas.engine.runlog import RunLogger
from lintas.engine.stage import StageContext
from lintas.workers.deploy import checks as C
from lintas.workers.deploy.hostfleet import HostFleet
from lintas.workers.hosts import ops as host_ops
from lintas.workers.model import InfraModel
from lintas.workers.model.revision import load_model_at

POLL_S = 2.0


async def load_model_of(ctx: StageContext, sha: str) -> InfraModel | str:
    try:
        return await asyncio.to_thread(load_model_at, ctx.mirror, ctx.job.url, sha)
    except InputError as exc:
        return f"the model at {sha[:8]} is invalid: {exc.summary}"


def lease_owner(run_id: str) -> str:
    """Leases belong to the run (not the worker): deploy takes them, verify or rollback release them."""
    return f"run:{run_id}"


def locks_for(ctx: StageContext) -> LeaseLocks:
    return LeaseLocks(ctx.topology.locks, ttl_s=ctx.settings.deploy.lease_ttl_s)


async def release_all(locks: LeaseLocks, run_id: str, targets: Iterable[str]) -> None:
    for t in targets:
        try:
            lease = await locks.acquire(t, lease_owner(run_id))  # ours: refreshes and returns the revision
        except Exception:  # noqa: BLE001 - someone else's now: nothing of ours to release
            continue
        await locks.release(lease)


async def renew_all(locks: LeaseLocks, leases: dict[str, Lease]) -> None:
    for t, lease in list(leases.items()):
        leases[t] = await locks.renew(lease)


def check_lines(checks: list[C.Check], limit: int = 12) -> list[str]:
    bad = C.failing(checks)
    lines = [f"{c.device} {c.check} {c.subject}: expected {c.expected}, observed {c.observed}" for c in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more failing check(s)")
    return lines


async def load_bundle(store: ArtifactStore, artifacts: dict[str, str] | None) -> dict[str, str] | None:
    """``{artifact name: text}`` from content ids; None when any blob is no longer stored."""
    if artifacts is None:
        return None
    out = {}
    for name, cid in artifacts.items():
        data = await store.get_blob(cid)
        if data is None:
            return None
        out[name] = data.decode()
    return out


async def verify_hosts(
    hosts: HostFleet,
    bundles: dict[str, dict[str, str]],
    *,
    log: RunLogger,
    timeout_s: float,
    deletions_allowed: bool,
    label: str,
) -> list[C.Check]:
    """Poll every host's checks (:func:`workers.hosts.ops.checks`) until all pass or ``timeout_s``."""
    if not bundles:
        return []
    deadline = time.monotonic() + timeout_s
    rounds = 0
    while True:
        rounds += 1
        results = await hosts.run(
            bundles,
            lambda c: host_ops.checks(
                c, bundles[c.name], deletions_allowed=deletions_allowed, timeout_s=hosts.timeout_s
            ),
        )
        checks: list[C.Check] = []
        for name in sorted(bundles):
            r = results[name]
            if r.ok and r.value is not None:
                checks += r.value
            else:
                checks.append(
                    C.Check(
                        device=name,
                        check="reachable",
                        subject=hosts.conns[name].libvirt_display,
                        passed=False,
                        expected="libvirt, OVSDB and SSH answer",
                        observed=r.error,
                    )
                )
        if not C.failing(checks) or time.monotonic() >= deadline:
            s = C.summary(checks)
            await log.info(f"{label} (hosts): {s['passed']}/{s['checks']} checks passed after {rounds} round(s)")
            return checks
        await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
