"""One run's rollout: the per-run deploy state and the steps that walk it, wave by wave.

A :class:`Rollout` holds what the deploy stage threads through a rollout (the deployment
record, the leases, the fleets, the waves, the artifact texts, the devices configured so far)
and has one method per step: :meth:`~Rollout.switch_wave` (commit with a revert timer),
:meth:`~Rollout.host_wave` (snapshot stored first, then converge), :meth:`~Rollout.health_gate`
(the wave's BGP sessions Established; a session down for a cause waiting cannot heal fails it at
once) and :meth:`~Rollout.stop` (the first failed wave ends it).
The deploy stage (:mod:`workers.deploy.deploy`) decides what to roll out; this walks it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.contracts import DeploySummary
from lintas.engine.errors import LockHeldError
from lintas.engine.locks import Lease, LeaseLocks
from lintas.engine.stage import StageContext, StageResult
from lintas.workers.deploy import faults, ops
from lintas.workers.deploy.common import lease_owner, load_bundle, locks_for, renew_all
from lintas.workers.deploy.fabric_verify import why_down
from lintas.workers.deploy.fleet import Fleet
from lintas.workers.deploy.hostfleet import HostFleet
from lintas.workers.deploy.record import DeployRecord, TargetResult, now, save_record
from lintas.workers.deploy.waves import Wave
from lintas.workers.hosts import ops as host_ops
from lintas.workers.model.model import InfraModel

LEASE_WAIT_S = 30.0  # how long a deploy waits for a device another holder has leased


@dataclass(frozen=True, slots=True)
class Fleets:
    """The connections of a rollout: switches (nornir/napalm) and hypervisor hosts."""

    switches: Fleet
    hosts: HostFleet


class Rollout:
    """The deploy state of one run (``record.revert_in_s`` and ``record.allow_deletions`` are its options)."""

    def __init__(
        self,
        ctx: StageContext,
        model: InfraModel,
        record: DeployRecord,
        waves: list[Wave],
        fleets: Fleets,
        health_timeout_s: float,
    ) -> None:
        self.ctx = ctx
        self.model = model
        self.record = record
        self.waves = waves
        self.fleets = fleets
        self.health_timeout_s = health_timeout_s
        self.store = NatsArtifactStore(ctx.topology.artifacts)
        self.locks: LeaseLocks = locks_for(ctx)
        self.leases: dict[str, Lease] = {}
        self.bundles: dict[str, dict[str, str]] = {}  # target -> {artifact: text}
        # devices whose BGP peers are expected up: configured before, unchanged, or committed by a healthy wave
        self.configured = {n for n, r in record.targets.items() if r.previous is not None or r.status == "unchanged"}
        self.message = ops.commit_message(ctx.job.run_id, ctx.job.sha, ctx.job.repo, ctx.job.ref)
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ the walk
    async def run(self) -> StageResult:
        """Lease every target, then each wave in turn; the first failed wave stops the rollout."""
        try:
            await self.lease_all()
        except LockHeldError as exc:
            return StageResult.failed(f"device locked by another run: {exc}", summary=summary_of(self.record))
        self._loop = asyncio.get_running_loop()
        await self._load_bundles()
        for w in self.waves:
            await renew_all(self.locks, self.leases)
            failed = await (self.host_wave(w) if w.kind == "hosts" else self.switch_wave(w))
            if w.kind != "hosts" and not failed:
                failed = await self.health_gate(w)
            if failed:
                return await self.stop(w, failed)
            if w.kind != "hosts":
                await faults.reach(self.ctx.settings.home, "deploy.wave_healthy")
        self.record.finished_at = now()
        await save_record(self.store, self.record)
        await self.ctx.log.info(
            f"deployed: {len(self.record.with_status('committed'))} committed (awaiting verify), "
            f"{len(self.record.with_status('unchanged'))} unchanged"
        )
        return StageResult.ok(summary_of(self.record))

    async def lease_all(self) -> None:
        """A lease per target, owned by the run; on a lease held elsewhere, release ours and raise."""
        owner = lease_owner(self.ctx.job.run_id)
        try:
            for name in sorted(t for w in self.waves for t in w.devices):
                self.leases[name] = await acquire_waiting(self.locks, name, owner, LEASE_WAIT_S)
        except LockHeldError:
            for lease in self.leases.values():
                await self.locks.release(lease)
            self.leases.clear()
            raise

    async def assert_lease(self, name: str) -> None:
        """The lease on ``name`` is still ours (else raise): before a host's change."""
        await self.locks.assert_held(self.leases[name])

    def fence(self, name: str) -> None:
        """In a nornir thread, just before a commit: the lease is still ours (else raise)."""
        assert self._loop is not None, "fence() before run()"
        asyncio.run_coroutine_threadsafe(self.locks.assert_held(self.leases[name]), self._loop).result(30)

    async def _load_bundles(self) -> None:
        for w in self.waves:
            for name in w.devices:
                self.bundles[name] = {
                    a: (await _blob(self.store, cid)) for a, cid in self.record.targets[name].artifacts.items()
                }

    # ------------------------------------------------------------------ switches
    async def switch_wave(self, w: Wave) -> list[str]:
        """Commit the wave's candidates with a revert timer; returns the devices that failed."""
        ctx, record = self.ctx, self.record
        t0 = time.monotonic()
        await ctx.log.info(f"wave {w.index} ({w.kind}): {', '.join(w.devices)}")
        # the confirm window starts when the rollout ends: add the health budget of later waves
        timer = int(record.revert_in_s + (len(self.waves) - 1 - w.index) * self.health_timeout_s)
        if w.index == 0:
            await faults.reach(ctx.settings.home, "deploy.before_commit")
        results = await self.fleets.switches.run(
            w.devices,
            ops.apply,
            bundles=self.bundles,
            revert_in=timer,
            message=self.message,
            fence=self.fence,
            run_id=ctx.job.run_id,
        )
        took = time.monotonic() - t0
        failed: list[str] = []
        for name in w.devices:
            r, out = record.targets[name], results[name]
            r.duration_s = took
            if out.ok and out.value is not None:
                await self._applied(r, out.value, timer)
            else:
                r.status, r.error, r.failure = "failed", out.error, out.failure
                failed.append(name)
                await ctx.log.error(f"{name}: {out.error}")
        await save_record(self.store, record)
        await faults.reach(ctx.settings.home, "deploy.committed")
        self.configured |= set(w.devices) - set(failed)
        return failed

    async def _applied(self, r: TargetResult, a: ops.Applied, timer: int) -> None:
        """One device's apply outcome into its record entry (a resumed rollout keeps what it knew)."""
        log, name = self.ctx.log, r.target
        if a.resumed:
            r.changed, r.checkpoint, r.status = True, a.checkpoint, "committed"
            r.diff = r.diff or a.diff
            r.committed_at = r.committed_at or now()
            r.revert_in_s = r.revert_in_s or timer
            await log.warning(
                f"{name}: holds this run's commit {a.checkpoint} from before the restart: "
                f"adopted, awaiting verify ({a.seconds_left} s left on its timer)"
            )
        elif a.changed:
            r.changed, r.diff, r.checkpoint = True, self.fleets.switches.mask(a.diff), a.checkpoint
            r.status, r.committed_at, r.revert_in_s = "committed", now(), timer
            await log.info(f"{name}: committed, reverts in {timer} s unless confirmed")
        elif r.status == "committed":  # committed before a restart, no longer pending, at the candidate
            await log.warning(
                f"{name}: at the desired config with no pending commit after the restart: "
                "verify confirms it is this run's (or fails)"
            )
        else:
            r.status = "unchanged"
            await log.info(f"{name}: already at the desired config: unchanged")

    async def health_gate(self, w: Wave) -> list[str]:
        """The wave's sessions to configured peers Established within the health timeout; returns failed devices."""
        model, timeout_s = self.model, self.health_timeout_s
        peers = {
            n: sorted(
                str(lk.remote(n).ip.ip)
                for lk in model.links_by_device.get(n, ())
                if lk.remote(n).device in self.configured
            )
            for n in w.devices
            if n in model.devices
        }
        deadline = time.monotonic() + timeout_s
        while True:
            results = await self.fleets.switches.run(w.devices, ops.bgp_health, peers=peers)
            problems = {n: (r.value if r.ok else [r.error or "unreachable"]) for n, r in results.items()}
            bad = {n: p for n, p in problems.items() if p}
            if not bad:
                await self.ctx.log.info(
                    f"wave {w.index} healthy: {sum(len(p) for p in peers.values())} session(s) Established"
                )
                return []
            # a session down for a cause waiting cannot heal (an AS the peer does not speak, passwords
            # that differ at its two ends, a port at the wrong MTU) fails the wave at once, with it
            down = sorted(n for n, p in bad.items() if any("not Established" in str(x) for x in p))
            causes = await why_down(self.fleets.switches, model, down, self.configured) if down else []
            if causes or time.monotonic() >= deadline:
                for n, p in sorted(bad.items()):
                    mine = [c for c in causes if c.startswith(f"{n} ") or f"({n})" in c]
                    why = "; ".join(mine or [str(x) for x in p])
                    self.record.targets[n].error = f"health gate: {why}"
                    when = "at once: waiting cannot heal it" if causes else f"after {timeout_s:g} s"
                    await self.ctx.log.error(f"{n}: not healthy ({when}): {why}")
                return sorted(bad)
            await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ hosts
    async def host_wave(self, w: Wave) -> list[str]:
        """Snapshot (stored before any change), then apply, every host of the wave; returns failed hosts."""
        ctx, record, store = self.ctx, self.record, self.store
        await ctx.log.info(f"wave {w.index} ({w.kind}): {', '.join(w.devices)}")
        t0 = time.monotonic()
        prev = {n: await load_bundle(store, record.targets[n].previous) for n in w.devices}
        # a host whose snapshot this run already stored (a crash mid-wave) keeps it: a new one
        # would capture the half-applied state as "before"
        kept = [
            n
            for n in w.devices
            if record.targets[n].checkpoint and await store.get_doc(str(record.targets[n].checkpoint)) is not None
        ]
        for name in kept:
            await ctx.log.warning(
                f"{name}: resuming with the snapshot stored before the restart "
                f"({record.targets[name].checkpoint}): completing the host"
            )
        ready, failed = await self._snapshots(w, kept, prev)
        await save_record(store, record)
        failed += await self._converge_hosts(ready, kept, prev, t0)
        await save_record(store, record)
        return failed

    async def _snapshots(
        self, w: Wave, kept: list[str], prev: dict[str, dict[str, str] | None]
    ) -> tuple[list[str], list[str]]:
        """Each host's snapshot stored (fenced), unless kept from before a restart: ``(ready, failed)``."""
        hosts, record = self.fleets.hosts, self.record
        snaps = await hosts.run(
            [n for n in w.devices if n not in kept],
            lambda c: host_ops.take_snapshot(c, self.bundles[c.name], prev[c.name], hosts.timeout_s),
        )
        failed: list[str] = []
        ready: list[str] = list(kept)
        for name in w.devices:
            if name in kept:
                await self.assert_lease(name)
                continue
            r, out = record.targets[name], snaps[name]
            if not out.ok or out.value is None:
                r.status, r.error = "failed", f"cannot read its state, nothing changed: {out.error}"
                r.failure = out.failure
                failed.append(name)
                await self.ctx.log.error(f"{name}: {r.error}")
                continue
            doc = S.host_snapshot_doc(record.run_id, name)
            await self.store.put_doc(doc, out.value.model_dump_json().encode())
            r.checkpoint = doc
            await self.assert_lease(name)  # fenced: the lease is still ours
            ready.append(name)
        return ready, failed

    async def _converge_hosts(
        self, ready: list[str], kept: list[str], prev: dict[str, dict[str, str] | None], t0: float
    ) -> list[str]:
        """Apply the bundle on every ready host; the outcome into the record. Returns failed hosts."""
        ctx, hosts, d = self.ctx, self.fleets.hosts, self.ctx.settings.deploy
        results = await hosts.run(
            ready,
            lambda c: host_ops.apply(
                c,
                self.bundles[c.name],
                prev[c.name],
                allow_deletions=self.record.allow_deletions,
                shutdown_timeout_s=d.domain_shutdown_timeout_s,
                parallelism=d.domain_parallelism,
                timeout_s=hosts.timeout_s,
                between=lambda: faults.reach_blocking(ctx.settings.home, "deploy.host_mid_apply"),
            ),
        )
        failed: list[str] = []
        for name in ready:
            r, res = self.record.targets[name], results[name]
            r.duration_s = time.monotonic() - t0
            if res.ok and res.value is not None:
                v = res.value
                # resumed: whatever the first delivery applied counts as this run's change
                was = r.status == "committed" or name in kept
                r.changed = v.changed or was
                r.diff = "\n".join(v.changes + [f"restart pending: {x}" for x in v.restart_pending] + v.kept) or r.diff
                r.status = "committed" if r.changed else "unchanged"
                r.committed_at = (r.committed_at or now()) if r.changed else None
                await ctx.log.info(
                    f"{name}: {len(v.changes)} change(s) applied, awaiting verify"
                    if v.changed
                    else f"{name}: already at the desired state: unchanged"
                )
                for line in v.restart_pending + v.kept:
                    await ctx.log.warning(f"{name}: {line}")
            else:
                r.status, r.error, r.failure = "failed", res.error, res.failure
                failed.append(name)
                await ctx.log.error(f"{name}: {res.error}")
        return failed

    # ------------------------------------------------------------------ the end
    async def stop(self, w: Wave, failed: list[str]) -> StageResult:
        """Wave ``w`` failed on ``failed``: the rest is skipped, the record closed, the stage fails."""
        record = self.record
        for r in record.targets.values():
            if r.status == "pending":
                r.status, r.error = "skipped", f"not attempted: wave {w.index} failed"
        record.finished_at = now()
        await save_record(self.store, record)
        detail = "; ".join(f"{n}: {record.targets[n].error}" for n in failed)
        return StageResult.failed(
            f"wave {w.index} ({w.kind}) failed on {', '.join(failed)}: {detail}", summary=summary_of(record)
        )


def summary_of(record: DeployRecord) -> dict[str, Any]:
    """The deploy stage's summary on the run (:class:`~engine.contracts.DeploySummary`)."""
    return DeploySummary(
        record=S.deploy_record_doc(record.run_id),
        waves=record.waves,
        committed=record.with_status("committed"),
        unchanged=record.with_status("unchanged"),
        failed=record.with_status("failed"),
        devices=[r.brief() for r in record.targets.values() if r.status != "unchanged" or r.wave is not None],
    ).dump()


def result_of(record: DeployRecord) -> StageResult:
    """A rollout that had already ended before this delivery: the same outcome again."""
    failed = record.with_status("failed")
    if failed:
        detail = "; ".join(f"{n}: {record.targets[n].error}" for n in failed)
        return StageResult.failed(f"deploy failed on {', '.join(failed)}: {detail}", summary=summary_of(record))
    return StageResult.ok(summary_of(record))


async def acquire_waiting(locks: LeaseLocks, target: str, owner: str, wait_s: float) -> Lease:
    """A short wait for a lease held briefly (a drift scan reads a device for a few seconds)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await locks.acquire(target, owner)
        except LockHeldError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(1.0)


async def _blob(store: NatsArtifactStore, cid: str) -> str:
    data = await store.get_blob(cid)
    if data is None:
        raise LookupError(f"artifact {cid} is no longer stored: re-run the render stage")
    return data.decode()
