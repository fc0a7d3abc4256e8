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

The stage decides what to roll out (the plan, the record, the waves); :class:`~workers.deploy.rollout.Rollout`
walks it (leases, switch and host waves, the health gate, stopping). Verify confirms the
commits; rollback (``on_failure``) undoes them.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from pydantic import ValidationError

from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext, StageResult
from lintas.engine.targets import TargetStore
from lintas.workers.deploy import twin_guard
from lintas.workers.deploy.common import plan_and_model
from lintas.workers.deploy.connect import ConnectError
from lintas.workers.deploy.fleet import Fleet
from lintas.workers.deploy.hostfleet import HostFleet
from lintas.workers.deploy.record import DeployRecord, TargetResult, load_record, now, save_record
from lintas.workers.deploy.rollout import Fleets, Rollout, result_of, summary_of
from lintas.workers.deploy.waves import Strategy, plan_waves
from lintas.workers.model.model import InfraModel
from lintas.workers.render.plan import Plan


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
                f"{job.stage}. Nothing was deployed."
            )
        store = NatsArtifactStore(ctx.topology.artifacts)
        unproven = await twin_guard.refusal(job, store)
        if unproven is not None:
            await ctx.log.error(unproven)
            return StageResult.failed(unproven)
        try:
            opts = Strategy.model_validate(job.options)
        except ValidationError as exc:
            return StageResult.failed(
                f"deploy options (`with:` of stage {job.stage}): {exc.errors()[0]['msg']} "
                f"at {'.'.join(map(str, exc.errors()[0]['loc']))}"
            )
        got = await plan_and_model(ctx, store, "deploy")
        if isinstance(got, str):
            return StageResult.failed(got)
        plan, model = got

        revert_in = opts.revert_in or d.revert_in_s
        if revert_in < d.verify_timeout_s + 20:
            return StageResult.failed(
                f"revert_in {revert_in} s would let devices revert while verify may still run "
                f"(verify timeout {d.verify_timeout_s:g} s): use at least {d.verify_timeout_s + 20:g} s"
            )
        deletions = d.allow_deletions if opts.allow_deletions is None else opts.allow_deletions
        record = await load_record(store, job.run_id)
        # a redelivery or a restart resumes the record, never starts afresh; a new attempt of an
        # ended rollout starts a new record (a commit of this run still pending is adopted then)
        if (
            record is not None
            and record.sha == job.sha
            and (record.finished_at is None or record.attempt == job.attempt)
        ):
            resumed = True
            deletions, revert_in = record.allow_deletions, record.revert_in_s
            todo = record.rolled_out
            await ctx.log.warning(
                f"resuming this run's deployment record (delivery {ctx.delivery}): "
                + (", ".join(f"{n} {record.targets[n].status}" for n in todo) or "nothing to do")
            )
            if record.finished_at is not None:
                return result_of(record)
            record.attempt = job.attempt
        else:
            resumed = False
            record, todo = await self._new_record(ctx, plan, model, revert_in, deletions)
        waves = plan_waves(
            todo,
            {n: record.targets[n].role or _role(model, n) for n in todo},
            strategy=opts.strategy,
            canary=d.canary if opts.canary is None else opts.canary,
            batch_size=d.batch_size if opts.batch_size is None else opts.batch_size,
        )
        if resumed and [w.devices for w in waves] != record.waves:
            return StageResult.failed(
                f"cannot resume: the record's waves {record.waves} differ from "
                f"{[w.devices for w in waves]} (changed options?)",
                summary=summary_of(record),
            )
        record.waves = [w.devices for w in waves]
        for w in waves:
            for n in w.devices:
                record.targets[n].wave = w.index
        await save_record(store, record)  # before the first commit
        if not todo:
            record.finished_at = now()
            await save_record(store, record)
            await ctx.log.info(f"nothing to deploy: {len(record.with_status('unchanged'))} target(s) unchanged")
            return StageResult.ok(summary_of(record))

        parallelism = opts.parallelism or d.parallelism
        try:
            # the switches to change and their modelled peers (read only by the health gate, to tell a
            # session that cannot come up: its two ends are compared; a session opens only when used)
            switches = [n for n in todo if n in model.devices]
            peers = {lk.remote(n).device for n in switches for lk in model.links_by_device.get(n, ())}
            fleet = await asyncio.to_thread(
                Fleet, model, ctx.settings, sorted(set(switches) | peers), parallelism=parallelism
            )
            hosts = HostFleet(model, ctx.settings, [n for n in todo if n in model.hosts], parallelism=parallelism)
        except ConnectError as exc:
            return StageResult.failed(f"cannot connect: {exc}", summary=summary_of(record))
        try:
            rollout = Rollout(
                ctx, model, record, waves, Fleets(fleet, hosts), opts.health_timeout or d.health_timeout_s
            )
            return await rollout.run()
        finally:
            await asyncio.to_thread(fleet.close)

    async def _new_record(
        self, ctx: StageContext, plan: Plan, model: InfraModel, revert_in: int, deletions: bool
    ) -> tuple[DeployRecord, list[str]]:
        job = ctx.job
        record = DeployRecord(
            run_id=job.run_id,
            repo=job.repo,
            sha=job.sha,
            revert_in_s=revert_in,
            allow_deletions=deletions,
            attempt=job.attempt,
        )
        deployed = await TargetStore(ctx.topology.targets).all()
        todo: list[str] = []
        for name, tp in sorted(plan.targets.items()):
            prev = deployed.get(name)
            res = TargetResult(
                target=name,
                kind=tp.kind or "device",
                artifacts=tp.artifacts,
                role=_role(model, name),
                previous=prev.artifacts if prev else None,
                previous_commit=prev.commit if prev else None,
            )
            if tp.status == "unchanged":
                res.status = "unchanged"
            elif tp.status == "removed":
                res.status, res.error = "skipped", "removed from the model: decommissioning is manual"
            else:
                todo.append(name)
            record.targets[name] = res
        return record, todo


def _role(model: InfraModel, name: str) -> str:
    if name in model.devices:
        return model.devices[name].role
    return "host"
