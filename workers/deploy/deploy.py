"""The ``deploy`` stage: push the plan to the fabric, wave by wave, with commit-confirm.

1. read the render stage's plan: only targets ``new`` or ``changed`` are touched;
2. take a lease per device (owner: the run), fenced before every commit;
3. waves (:mod:`workers.deploy.waves`): each device loads the replace candidate, and
   when ``compare_config`` shows a difference commits with a device-side revert timer
   (``revert_in``); a device already at the desired config is reported unchanged and
   not committed;
4. after each wave, a health gate: the wave's BGP sessions to every configured peer are
   Established with prefixes received within ``health_timeout``; the first failed
   wave stops the rollout;
5. the deployment record (per-device status, diff, checkpoint, last-known-good) is
   written before the first commit and after every wave.

Hypervisor hosts come in waves of their own after every switch wave (never with their
top-of-rack leaf): each host's state is snapshotted and stored first
(``deploy/<run>/hosts/<host>.before.json``, its checkpoint), then its OVS/OVN state is
converged in one OVSDB transaction, its tunnel address set, and on ``kvm`` hosts its
domains defined/started/stopped (removals only with ``allow_deletions``). Hosts have no
device-side timer: rollback restores the snapshot.

**Resume, never restart** (issue 19). A redelivered job (a crash, a killed worker, a restarted
engine) finds the run's record and resumes it: waves are re-walked, and before comparing,
each device's pending commit is read on the device. This run's own (its message names the
run) is adopted as committed and awaiting verify, never taken for "unchanged" although the
device is at the candidate; another run's, or one of unknown origin, fails the device. A
host whose snapshot the run already stored keeps it and is converged to completion.

Verify confirms the commits; rollback (``on_failure``) undoes them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from pydantic import ValidationError

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.errors import LockHeldError
from lintas.engine.locks import Lease, LeaseLocks
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext, StageResult
from lintas.engine.targets import TargetStore
from lintas.workers.deploy import faults, ops
from lintas.workers.deploy.common import lease_owner, load_bundle, load_model_of, locks_for, renew_all
from lintas.workers.deploy.connect import ConnectError
from lintas.workers.deploy.fleet import Fleet
from lintas.workers.deploy.hostfleet import HostFleet
from lintas.workers.deploy.record import DeployRecord, TargetResult, load_record, now, save_record
from lintas.workers.deploy.waves import Strategy, Wave, plan_waves
from lintas.workers.hosts import ops as host_ops
from lintas.workers.model.model import InfraModel
from lintas.workers.render.plan import Plan

LEASE_WAIT_S = 30.0  # how long a deploy waits for a device another holder has leased


class DeployStage:
    kind: ClassVar[str] = "deploy"
    # Commits carry a device-side revert timer that only verify confirms: a pipeline must run a
    # verify stage after deploy (checked by validate, and below before any device is touched).
    confirmed_by: ClassVar[str] = "verify"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def run(self, ctx: StageContext) -> StageResult:
        job, d = ctx.job, ctx.settings.deploy
        if job.downstream_kinds is not None and self.confirmed_by not in job.downstream_kinds:
            return StageResult.failed(
                f"no {self.confirmed_by} stage follows stage {job.stage}: its commits would revert on the devices "
                f"after the run is reported succeeded; add a stage of kind {self.confirmed_by} that needs "
                f"{job.stage}. Nothing was deployed.")
        try:
            opts = Strategy.model_validate(job.options)
        except ValidationError as exc:
            return StageResult.failed(f"deploy options (`with:` of stage {job.stage}): {exc.errors()[0]['msg']} "
                                      f"at {'.'.join(map(str, exc.errors()[0]['loc']))}")
        store = NatsArtifactStore(ctx.topology.artifacts)
        plan_name = (job.inputs.get("render") or {}).get("plan") or S.plan_doc(job.run_id)
        raw = await store.get_doc(str(plan_name))
        if raw is None:
            return StageResult.failed("no plan for this run: deploy needs the render stage (needs: [render])")
        plan = Plan.model_validate_json(raw)
        model = await load_model_of(ctx, job.sha)
        if isinstance(model, str):
            return StageResult.failed(model)

        revert_in = opts.revert_in or d.revert_in_s
        if revert_in < d.verify_timeout_s + 20:
            return StageResult.failed(
                f"revert_in {revert_in} s would let devices revert while verify may still run "
                f"(verify timeout {d.verify_timeout_s:g} s): use at least {d.verify_timeout_s + 20:g} s")
        deletions = d.allow_deletions if opts.allow_deletions is None else opts.allow_deletions
        record = await load_record(store, job.run_id)
        # a redelivery or a restart resumes the record, never starts afresh; a new attempt of an
        # ended rollout starts a new record (a commit of this run still pending is adopted then)
        if record is not None and record.sha == job.sha and (record.finished_at is None
                                                             or record.attempt == job.attempt):
            resumed = True
            deletions, revert_in = record.allow_deletions, record.revert_in_s
            todo = record.rolled_out
            await ctx.log.warning(f"resuming this run's deployment record (delivery {ctx.delivery}): "
                                  + (", ".join(f"{n} {record.targets[n].status}" for n in todo) or "nothing to do"))
            if record.finished_at is not None:
                return self._result_of(record)
            record.attempt = job.attempt
        else:
            resumed = False
            record, todo = await self._new_record(ctx, plan, model, revert_in, deletions)
        waves = plan_waves(todo, {n: record.targets[n].role or _role(model, n) for n in todo},
                           strategy=opts.strategy, canary=d.canary if opts.canary is None else opts.canary,
                           batch_size=d.batch_size if opts.batch_size is None else opts.batch_size)
        if resumed and [w.devices for w in waves] != record.waves:
            return StageResult.failed(f"cannot resume: the record's waves {record.waves} differ from "
                                      f"{[w.devices for w in waves]} (changed options?)", summary=self._summary(record))
        record.waves = [w.devices for w in waves]
        for w in waves:
            for n in w.devices:
                record.targets[n].wave = w.index
        await save_record(store, record)  # before the first commit
        if not todo:
            record.finished_at = now()
            await save_record(store, record)
            await ctx.log.info(f"nothing to deploy: {len(record.with_status('unchanged'))} target(s) unchanged")
            return StageResult.ok(self._summary(record))

        parallelism = opts.parallelism or d.parallelism
        try:
            fleet = await asyncio.to_thread(Fleet, model, ctx.settings, [n for n in todo if n in model.devices],
                                            parallelism=parallelism)
            hosts = HostFleet(model, ctx.settings, [n for n in todo if n in model.hosts], parallelism=parallelism)
        except ConnectError as exc:
            return StageResult.failed(f"cannot connect: {exc}", summary=self._summary(record))
        try:
            return await self._rollout(ctx, fleet, hosts, model, record, waves, revert_in,
                                       opts.health_timeout or d.health_timeout_s, store, deletions)
        finally:
            await asyncio.to_thread(fleet.close)

    async def _new_record(self, ctx: StageContext, plan: Plan, model: InfraModel, revert_in: int,
                          deletions: bool) -> tuple[DeployRecord, list[str]]:
        job = ctx.job
        record = DeployRecord(run_id=job.run_id, repo=job.repo, sha=job.sha, revert_in_s=revert_in,
                              allow_deletions=deletions, attempt=job.attempt)
        deployed = await TargetStore(ctx.topology.targets).all()
        todo: list[str] = []
        for name, tp in sorted(plan.targets.items()):
            prev = deployed.get(name)
            res = TargetResult(target=name, kind=tp.kind or "device", artifacts=tp.artifacts,
                               role=_role(model, name), previous=prev.artifacts if prev else None,
                               previous_commit=prev.commit if prev else None)
            if tp.status == "unchanged":
                res.status = "unchanged"
            elif tp.status == "removed":
                res.status, res.error = "skipped", "removed from the model: decommissioning is manual"
            else:
                todo.append(name)
            record.targets[name] = res
        return record, todo

    def _result_of(self, record: DeployRecord) -> StageResult:
        """A rollout that had already ended before this delivery: the same outcome again."""
        failed = record.with_status("failed")
        if failed:
            detail = "; ".join(f"{n}: {record.targets[n].error}" for n in failed)
            return StageResult.failed(f"deploy failed on {', '.join(failed)}: {detail}", summary=self._summary(record))
        return StageResult.ok(self._summary(record))

    async def _rollout(self, ctx: StageContext, fleet: Fleet, hosts: HostFleet, model: InfraModel,
                       record: DeployRecord, waves: list[Wave], revert_in: int, health_timeout: float,
                       store: NatsArtifactStore, deletions: bool) -> StageResult:
        job = ctx.job
        locks = locks_for(ctx)
        leases: dict[str, Lease] = {}
        try:
            for name in sorted(t for w in waves for t in w.devices):
                leases[name] = await _acquire_waiting(locks, name, lease_owner(job.run_id), LEASE_WAIT_S)
        except LockHeldError as exc:
            for lease in leases.values():
                await locks.release(lease)
            return StageResult.failed(f"device locked by another run: {exc}", summary=self._summary(record))

        loop = asyncio.get_running_loop()

        def fence(name: str) -> None:  # in a nornir thread, just before a commit
            asyncio.run_coroutine_threadsafe(locks.assert_held(leases[name]), loop).result(30)

        bundles: dict[str, dict[str, str]] = {}
        for w in waves:
            for name in w.devices:
                bundles[name] = {a: (await self._blob(store, cid)) for a, cid in record.targets[name].artifacts.items()}
        message = ops.commit_message(job.run_id, job.sha, job.repo, job.ref)
        configured = {n for n, r in record.targets.items() if r.previous is not None or r.status == "unchanged"}
        for w in waves:
            await renew_all(locks, leases)
            t0 = time.monotonic()
            await ctx.log.info(f"wave {w.index} ({w.kind}): {', '.join(w.devices)}")
            if w.kind == "hosts":
                failed_hosts = await self._host_wave(ctx, hosts, record, w, bundles, store, locks, leases, deletions)
                await save_record(store, record)
                if failed_hosts:
                    return await self._stop(ctx, store, record, w, failed_hosts)
                continue
            # the confirm window starts when the rollout ends: add the health budget of later waves
            timer = int(revert_in + (len(waves) - 1 - w.index) * health_timeout)
            if w.index == 0:
                await faults.reach(ctx.settings.home, "deploy.before_commit")
            results = await fleet.run(w.devices, ops.apply, bundles=bundles, revert_in=timer, message=message,
                                      fence=fence, run_id=job.run_id)
            took = time.monotonic() - t0
            failed: list[str] = []
            for name in w.devices:
                r, out = record.targets[name], results[name]
                r.duration_s = took
                if out.ok and out.value is not None:
                    await self._applied(ctx, fleet, r, out.value, timer)
                else:
                    r.status, r.error = "failed", out.error
                    failed.append(name)
                    await ctx.log.error(f"{name}: {out.error}")
            await save_record(store, record)
            await faults.reach(ctx.settings.home, "deploy.committed")
            configured |= set(w.devices) - set(failed)
            if not failed:
                failed = await self._health_gate(ctx, fleet, model, w, configured, health_timeout, record)
            if failed:
                return await self._stop(ctx, store, record, w, failed)
            await faults.reach(ctx.settings.home, "deploy.wave_healthy")
        record.finished_at = now()
        await save_record(store, record)
        committed = record.with_status("committed")
        await ctx.log.info(f"deployed: {len(committed)} committed (awaiting verify), "
                           f"{len(record.with_status('unchanged'))} unchanged")
        return StageResult.ok(self._summary(record))

    @staticmethod
    async def _applied(ctx: StageContext, fleet: Fleet, r: TargetResult, a: ops.Applied, timer: int) -> None:
        """One device's apply outcome into its record entry (a resumed rollout keeps what it knew)."""
        name = r.target
        if a.resumed:
            r.changed, r.checkpoint, r.status = True, a.checkpoint, "committed"
            r.diff = r.diff or a.diff
            r.committed_at = r.committed_at or now()
            r.revert_in_s = r.revert_in_s or timer
            await ctx.log.warning(f"{name}: holds this run's commit {a.checkpoint} from before the restart: "
                                  f"adopted, awaiting verify ({a.seconds_left} s left on its timer)")
        elif a.changed:
            r.changed, r.diff, r.checkpoint = True, fleet.mask(a.diff), a.checkpoint
            r.status, r.committed_at, r.revert_in_s = "committed", now(), timer
            await ctx.log.info(f"{name}: committed, reverts in {timer} s unless confirmed")
        elif r.status == "committed":  # committed before a restart, no longer pending, at the candidate
            await ctx.log.warning(f"{name}: at the desired config with no pending commit after the restart: "
                                  "verify confirms it is this run's (or fails)")
        else:
            r.status = "unchanged"
            await ctx.log.info(f"{name}: already at the desired config: unchanged")

    async def _host_wave(self, ctx: StageContext, hosts: HostFleet, record: DeployRecord, w: Wave,
                         bundles: dict[str, dict[str, str]], store: NatsArtifactStore, locks: LeaseLocks,
                         leases: dict[str, Lease], deletions: bool) -> list[str]:
        """Snapshot (stored before any change), then apply, every host of the wave; returns failed hosts."""
        d = ctx.settings.deploy
        t0 = time.monotonic()
        prev = {n: await load_bundle(store, record.targets[n].previous) for n in w.devices}
        # a host whose snapshot this run already stored (a crash mid-wave) keeps it: a new one
        # would capture the half-applied state as "before"
        kept = [n for n in w.devices if record.targets[n].checkpoint and await store.get_doc(
            str(record.targets[n].checkpoint)) is not None]
        for name in kept:
            await ctx.log.warning(f"{name}: resuming with the snapshot stored before the restart "
                                  f"({record.targets[name].checkpoint}): completing the host")
        snaps = await hosts.run([n for n in w.devices if n not in kept], lambda c: host_ops.take_snapshot(
            c, bundles[c.name], prev[c.name], hosts.timeout_s))
        failed: list[str] = []
        ready: list[str] = list(kept)
        for name in w.devices:
            if name in kept:
                await locks.assert_held(leases[name])
                continue
            r, out = record.targets[name], snaps[name]
            if not out.ok or out.value is None:
                r.status, r.error = "failed", f"cannot read its state, nothing changed: {out.error}"
                failed.append(name)
                await ctx.log.error(f"{name}: {r.error}")
                continue
            doc = S.host_snapshot_doc(record.run_id, name)
            await store.put_doc(doc, out.value.model_dump_json().encode())
            r.checkpoint = doc
            await locks.assert_held(leases[name])  # fenced: the lease is still ours
            ready.append(name)
        await save_record(store, record)
        results = await hosts.run(ready, lambda c: host_ops.apply(
            c, bundles[c.name], prev[c.name], allow_deletions=deletions,
            shutdown_timeout_s=d.domain_shutdown_timeout_s, parallelism=d.domain_parallelism,
            timeout_s=hosts.timeout_s, between=lambda: faults.reach_blocking(ctx.settings.home,
                                                                             "deploy.host_mid_apply")))
        for name in ready:
            r, res = record.targets[name], results[name]
            r.duration_s = time.monotonic() - t0
            if res.ok and res.value is not None:
                v = res.value
                # resumed: whatever the first delivery applied counts as this run's change
                was = r.status == "committed" or name in kept
                r.changed = v.changed or was
                r.diff = "\n".join(v.changes + [f"restart pending: {x}" for x in v.restart_pending] + v.kept) or r.diff
                r.status = "committed" if r.changed else "unchanged"
                r.committed_at = (r.committed_at or now()) if r.changed else None
                await ctx.log.info(f"{name}: {len(v.changes)} change(s) applied, awaiting verify" if v.changed
                                   else f"{name}: already at the desired state: unchanged")
                for line in v.restart_pending + v.kept:
                    await ctx.log.warning(f"{name}: {line}")
            else:
                r.status, r.error = "failed", res.error
                failed.append(name)
                await ctx.log.error(f"{name}: {res.error}")
        return failed

    async def _health_gate(self, ctx: StageContext, fleet: Fleet, model: InfraModel, w: Wave, configured: set[str],
                           timeout_s: float, record: DeployRecord) -> list[str]:
        """The wave's sessions to configured peers Established within ``timeout_s``; returns failed devices."""
        peers = {n: sorted(str(lk.remote(n).ip.ip) for lk in model.links_by_device.get(n, ())
                           if lk.remote(n).device in configured) for n in w.devices if n in model.devices}
        deadline = time.monotonic() + timeout_s
        while True:
            results = await fleet.run(w.devices, ops.bgp_health, peers=peers)
            problems = {n: (r.value if r.ok else [r.error or "unreachable"]) for n, r in results.items()}
            bad = {n: p for n, p in problems.items() if p}
            if not bad:
                await ctx.log.info(f"wave {w.index} healthy: {sum(len(p) for p in peers.values())} session(s) "
                                   "Established")
                return []
            if time.monotonic() >= deadline:
                for n, p in sorted(bad.items()):
                    record.targets[n].error = f"health gate: {'; '.join(str(x) for x in p)}"
                    await ctx.log.error(f"{n}: not healthy after {timeout_s:g} s: {'; '.join(str(x) for x in p)}")
                return sorted(bad)
            await asyncio.sleep(1.0)

    async def _stop(self, ctx: StageContext, store: NatsArtifactStore, record: DeployRecord, w: Wave,
                    failed: list[str]) -> StageResult:
        for r in record.targets.values():
            if r.status == "pending":
                r.status, r.error = "skipped", f"not attempted: wave {w.index} failed"
        record.finished_at = now()
        await save_record(store, record)
        detail = "; ".join(f"{n}: {record.targets[n].error}" for n in failed)
        return StageResult.failed(f"wave {w.index} ({w.kind}) failed on {', '.join(failed)}: {detail}",
                                  summary=self._summary(record))

    @staticmethod
    async def _blob(store: NatsArtifactStore, cid: str) -> str:
        data = await store.get_blob(cid)
        if data is None:
            raise LookupError(f"artifact {cid} is no longer stored: re-run the render stage")
        return data.decode()

    @staticmethod
    def _summary(record: DeployRecord) -> dict[str, Any]:
        return {
            "record": S.deploy_record_doc(record.run_id),
            "waves": record.waves,
            "committed": record.with_status("committed"),
            "unchanged": record.with_status("unchanged"),
            "failed": record.with_status("failed"),
            "devices": [r.brief() for r in record.targets.values() if r.status != "unchanged" or r.wave is not None],
        }


async def _acquire_waiting(locks: LeaseLocks, target: str, owner: str, wait_s: float) -> Lease:
    """A short wait for a lease held briefly (a drift scan reads a device for a few seconds)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await locks.acquire(target, owner)
        except LockHeldError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(1.0)


def _role(model: InfraModel, name: str) -> str:
    if name in model.devices:
        return model.devices[name].role
    return "host"
