"""What deploy, verify and rollback share: the model at a commit, leases, the hosts' verify loop (by
the fabric's stability rule; the fabric's loop is :mod:`workers.deploy.fabric_verify`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lintas.engine import subjects as S
from lintas.engine.artifacts import ArtifactStore
from lintas.engine.contracts import RenderSummary, upstream
from lintas.engine.errors import InputError
from lintas.engine.locks import Lease, LeaseLocks
from lintas.engine.runlog import RunLogger
from lintas.engine.stage import StageContext
from lintas.workers.deploy import checks as C
from lintas.workers.deploy.fabric_verify import Settling
from lintas.workers.deploy.hostfleet import HostFleet
from lintas.workers.deploy.settle import Reading, Stability, Verdict
from lintas.workers.hosts import ops as host_ops
from lintas.workers.hosts.probes import UplinkProbe
from lintas.workers.model import InfraModel
from lintas.workers.model.revision import load_model_at
from lintas.workers.render.plan import Plan


async def load_model_of(ctx: StageContext, sha: str) -> InfraModel | str:
    try:
        return await asyncio.to_thread(load_model_at, ctx.mirror, ctx.job.url, sha)
    except InputError as exc:
        return f"the model at {sha[:8]} is invalid: {exc.summary}"


async def plan_and_model(ctx: StageContext, store: ArtifactStore, stage: str) -> tuple[Plan, InfraModel] | str:
    """The render stage's plan of this run (found by kind: the pipeline may name the stage otherwise)
    and the model at the run's commit; or why there is none (deploy, twin)."""
    render = upstream(ctx.job, RenderSummary)
    raw = await store.get_doc(render.plan if render is not None and render.plan else S.plan_doc(ctx.job.run_id))
    if raw is None:
        return f"no plan for this run: {stage} needs the render stage (needs: [render])"
    model = await load_model_of(ctx, ctx.job.sha)
    if isinstance(model, str):
        return model
    return Plan.model_validate_json(raw), model


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


@dataclass(slots=True)
class HostVerification:
    """The hosts' last checks and what ended their verification (the fabric's stability rule)."""

    checks: list[C.Check]
    verdict: Verdict
    rounds: int

    def summary(self) -> dict[str, Any]:
        return {
            "ended_by": self.verdict.ended_by,
            "reason": self.verdict.reason,
            "quiet_s": round(self.verdict.quiet_s, 2),
            "rounds": self.rounds,
        }


# failing host checks that waiting may heal (a host not answering yet, an interface vswitchd has not
# given its port or MTU yet): while one fails, the hosts do not settle as failed
HOST_TRANSIENT = frozenset({"reachable", "ovs-health"})


def host_digest(checks: list[C.Check]) -> str:
    """What the hosts' stability rule watches: every check's outcome and observation."""
    text = json.dumps(
        sorted(
            (c.device, c.check, c.subject, c.passed, json.dumps(c.observed, sort_keys=True, default=str))
            for c in checks
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def uplink_probes(model: InfraModel, name: str, peers: Collection[str]) -> list[UplinkProbe]:
    """Host ``name``'s uplink probes (:mod:`workers.hosts.probes`), from its tunnel address: the
    gateway of its tunnel network (on its leaf), and each of its plain tunnel peers in ``peers``
    (the hosts that are up: deployed, or built in the twin), through the fabric. Each is a
    don't-fragment ping of the smallest MTU on its path (both uplinks', the tunnel network's)."""
    h = model.hosts[name]
    net = model.networks.get(h.uplink.tunnel_network)
    src, mtu = str(h.tunnel_ip.ip), min(h.uplink.mtu, net.mtu) if net is not None else h.uplink.mtu
    out = []
    if net is not None:
        what = f"gateway of {net.name} on {h.uplink.leaf}"
        out.append(UplinkProbe(source=src, destination=str(net.gateway.ip), size=mtu, what=what))
    for p in h.peers if h.tunnels is not None else ():
        if p in peers and p in model.hosts and p != name:
            far = model.hosts[p]
            size = min(mtu, far.uplink.mtu)
            out.append(UplinkProbe(source=src, destination=str(far.tunnel_ip.ip), size=size, what=f"tunnel peer {p}"))
    return out


async def verify_hosts(
    hosts: HostFleet,
    bundles: dict[str, dict[str, str]],
    *,
    log: RunLogger,
    settling: Settling,
    deletions_allowed: bool,
    probes: Mapping[str, list[UplinkProbe]],
) -> HostVerification:
    """Read every host's checks (:func:`workers.hosts.ops.checks`, with its uplink ``probes``:
    :func:`uplink_probes`) until the stability rule of :mod:`workers.deploy.settle` decides, as the
    fabric's verification does: ``stable`` (every check passes and no observation changed for the
    quiet window), ``settled`` (checks fail, none that waiting may heal, nothing changed for the
    settle window), or ``timeout``."""
    if not bundles:
        return HostVerification([], Verdict(True, "stable", "no host to verify", 0.0), 0)
    rule = Stability(
        started=time.monotonic(), timeout_s=settling.timeout_s, quiet_s=settling.quiet_s, settle_s=settling.settle_s
    )
    while True:
        results = await hosts.run(
            bundles,
            lambda c: host_ops.checks(
                c,
                bundles[c.name],
                deletions_allowed=deletions_allowed,
                timeout_s=hosts.timeout_s,
                probes=probes.get(c.name, []),
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
        bad = C.failing(checks)
        per_host = {n: host_digest([c for c in checks if c.device == n]) for n in bundles}
        transient = sum(1 for c in bad if c.check in HOST_TRANSIENT)
        verdict = rule.feed(Reading(time.monotonic(), per_host, len(bad), transient))
        if verdict is not None:
            s = C.summary(checks)
            await log.info(
                f"{settling.label} (hosts): {s['passed']}/{s['checks']} checks passed after {rule.readings} "
                f"round(s); ended by {verdict.ended_by}: {verdict.reason}"
            )
            return HostVerification(checks, verdict, rule.readings)
        await asyncio.sleep(min(settling.poll_s, max(0.0, rule.deadline - time.monotonic())))
