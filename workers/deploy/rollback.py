"""The ``rollback`` stage (``on_failure: [deploy, verify]``): back to last-known-good.

Every device this run committed to is restored: a pending commit is rolled back on the
device (napalm ``rollback``: the checkpoint taken before the commit), a confirmed one
too; a device whose timer already restored it is left alone and reported ``reverted``.
Then the fabric is verified again against the last-known-good model (the commit the
target store names). The stage fails, naming the devices that need attention, when a
device cannot be restored or the re-verification fails; the run then ends ``failed``.

The switches are restored the rollout's waves in reverse (the leaves before the spines they were
deployed after, each spine on its own as it was changed), every switch of one wave at once.

A hypervisor host is restored to the snapshot deploy stored before changing it (OVS/OVN
rows and keys, tunnel addresses, domain definitions and power states; domains the run
created are removed) and then compared with that snapshot.
"""

from __future__ import annotations

import asyncio
import json
from typing import ClassVar

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext, StageResult
from lintas.workers.deploy import checks as C
from lintas.workers.deploy import ops
from lintas.workers.deploy.common import check_lines, load_bundle, load_model_of, locks_for, release_all
from lintas.workers.deploy.connect import ConnectError
from lintas.workers.deploy.fabric_verify import Settling, verify_fabric
from lintas.workers.deploy.fleet import Fleet, Outcome
from lintas.workers.deploy.hostfleet import HostFleet
from lintas.workers.deploy.record import DeployRecord, load_record, save_record
from lintas.workers.deploy.waves import restore_order
from lintas.workers.hosts import ops as host_ops


class RollbackStage:
    kind: ClassVar[str] = "rollback"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def run(self, ctx: StageContext) -> StageResult:
        job = ctx.job
        store = NatsArtifactStore(ctx.topology.artifacts)
        record = await load_record(store, job.run_id)
        touched = record.with_status("committed", "confirmed", "failed", "reverted") if record else []
        if record is None or not touched:
            if record is not None:
                await release_all(locks_for(ctx), record.run_id, record.rolled_out)
            await ctx.log.info("nothing to roll back: this run changed no device")
            return StageResult.ok({"restored": [], "devices": []})
        model_now = await load_model_of(ctx, job.sha)
        if isinstance(model_now, str):
            return StageResult.failed(model_now)
        host_names = [n for n in touched if record.targets[n].kind == "host" and n in model_now.hosts]
        try:
            fleet = await asyncio.to_thread(Fleet, model_now, ctx.settings, sorted(model_now.devices))
            hosts = HostFleet(model_now, ctx.settings, host_names)
        except ConnectError as exc:
            return StageResult.failed(f"ROLLBACK NOT STARTED, needs attention: {exc}")
        try:
            await ctx.log.warning(f"rolling back {', '.join(touched)}")
            devices = [n for n in touched if n not in host_names]
            # reverse order of the rollout: hosts (the last waves) first, then the switches' waves in reverse
            attention, host_checks = await self._restore_hosts(ctx, hosts, store, record, host_names)
            results = await self._restore_switches(ctx, fleet, record, devices)
            for name in devices:
                r, t = results[name], record.targets[name]
                if r.ok and r.value == "not_ours":  # another run's (or unknown) commit: never touched
                    await ctx.log.warning(
                        f"{name}: left alone: the pending commit there is not this run's ({t.error or 'another run'})"
                    )
                    continue
                if r.ok and r.value is not None:
                    how = (
                        "restored to its checkpoint"
                        if r.value == "rolled_back"
                        else "restored by the driver when its commit failed"
                        if t.status == "failed"
                        else "already restored by its device-side timer"
                    )
                    t.status = "rolled_back" if r.value == "rolled_back" else "reverted"
                    await ctx.log.info(f"{name}: {how}")
                else:
                    timer = (
                        f"; its device-side timer restores it {t.revert_in_s} s after the commit "
                        f"({t.committed_at:%H:%M:%S} UTC)"
                        if t.status == "committed" and t.committed_at
                        else ""
                    )
                    t.status, t.error = "rollback_failed", f"{r.error}{timer}"
                    t.failure = r.failure
                    attention.append(name)
                    await ctx.log.error(f"{name}: ROLLBACK FAILED: {t.error}")
            await save_record(store, record)
            fabric_checks, verdict = await self._reverify(ctx, fleet, record, devices)
            checks = fabric_checks + host_checks
            report = S.verify_report_doc(job.run_id, job.stage)
            await store.put_doc(report, json.dumps([c.model_dump(mode="json") for c in checks]).encode())
            summary = {
                "restored": record.with_status("rolled_back", "reverted"),
                "attention": attention,
                "report": report,
                "totals": C.summary(checks),
                "reverify": verdict,
                "checks": [c.model_dump(mode="json") for c in C.failing(checks)][:100],
                "devices": [record.targets[n].brief() for n in touched],
            }
            bad = C.failing(checks)
            # devices that need attention keep their lease (until it expires): no run touches them meanwhile
            await release_all(locks_for(ctx), record.run_id, [t for t in record.rolled_out if t not in attention])
            if attention or bad:
                names = sorted(set(attention) | {c.device for c in bad})
                why = "; ".join([f"{n}: {record.targets[n].error}" for n in attention] + check_lines(checks, limit=6))
                return StageResult.failed(
                    f"ROLLBACK INCOMPLETE, devices need attention: {', '.join(names)}: {why}", summary=summary
                )
            return StageResult.ok(summary)
        finally:
            await asyncio.to_thread(fleet.close)

    async def _restore_switches(
        self, ctx: StageContext, fleet: Fleet, record: DeployRecord, devices: list[str]
    ) -> dict[str, Outcome[str]]:
        """The switches back to their checkpoints, the rollout's waves in reverse (leaves before the
        spines they followed, each spine on its own as it was changed), each wave's at once."""
        checkpoints = {n: record.targets[n].checkpoint for n in devices}
        results: dict[str, Outcome[str]] = {}
        groups = restore_order(record.waves, devices)
        for i, group in enumerate(groups):
            if len(groups) > 1:
                await ctx.log.info(
                    f"restoring {', '.join(group)} ({i + 1}/{len(groups)}, the rollout's waves in reverse)"
                )
            results.update(await fleet.run(group, ops.restore, run_id=record.run_id, checkpoints=checkpoints))
        return results

    async def _restore_hosts(
        self, ctx: StageContext, hosts: HostFleet, store: NatsArtifactStore, record: DeployRecord, names: list[str]
    ) -> tuple[list[str], list[C.Check]]:
        """Each host back to its pre-deploy snapshot, then compared with it."""
        d = ctx.settings.deploy
        snaps: dict[str, host_ops.HostSnapshot] = {}
        applied: dict[str, dict[str, str] | None] = {}
        for name in names:
            t = record.targets[name]
            raw = await store.get_doc(t.checkpoint) if t.checkpoint else None
            if raw is None:
                await ctx.log.info(f"{name}: nothing to restore (it failed before any change)")
                continue
            snaps[name] = host_ops.HostSnapshot.model_validate_json(raw)
            applied[name] = await load_bundle(store, t.artifacts)
        results = await hosts.run(
            snaps,
            lambda c: host_ops.restore(
                c,
                snaps[c.name],
                applied[c.name],
                shutdown_timeout_s=d.domain_shutdown_timeout_s,
                timeout_s=hosts.timeout_s,
                parallelism=d.domain_parallelism,
            ),
        )
        attention: list[str] = []
        for name in sorted(snaps):
            t, r = record.targets[name], results[name]
            if r.ok and r.value is not None:
                t.status = "rolled_back"
                await ctx.log.info(
                    f"{name}: restored to its state before the run"
                    + (f" ({len(r.value)} change(s))" if r.value else " (nothing to undo)")
                )
            else:
                t.status, t.error = "rollback_failed", r.error
                t.failure = r.failure
                attention.append(name)
                await ctx.log.error(f"{name}: ROLLBACK FAILED: {r.error}")
        ok = [n for n in sorted(snaps) if n not in attention]
        diffs = await hosts.run(ok, lambda c: host_ops.restored_differences(c, snaps[c.name], hosts.timeout_s))
        checks = []
        for name in ok:
            r2 = diffs[name]
            left = r2.value if r2.ok and r2.value is not None else [r2.error or "unreachable"]
            checks.append(
                C.Check(
                    device=name,
                    check="ovs",
                    subject="state before the run (OVS, addresses, domains)",
                    passed=not left,
                    expected="restored",
                    observed="; ".join(left) or "restored",
                )
            )
        return attention, checks

    async def _reverify(
        self, ctx: StageContext, fleet: Fleet, record: DeployRecord, restored: list[str]
    ) -> tuple[list[C.Check], dict[str, object] | None]:
        """Against the last-known-good model, by verify's stability rule, probing the pairs of the
        restored switches; with no such model (first deploy), only that no commit is pending."""
        commits = {t.previous_commit for t in record.targets.values() if t.previous_commit}
        if len(commits) == 1:
            good = await load_model_of(ctx, commits.pop())
            if not isinstance(good, str):
                names = sorted(n for n in good.devices if n in fleet.conns)
                v = await verify_fabric(
                    fleet,
                    good,
                    names,
                    log=ctx.log,
                    settling=Settling.of("re-verify (last-known-good)", ctx.settings.deploy),
                    changed=set(restored),
                )
                checks = v.checks
                if not v.verdict.passed and not C.failing(checks):  # deterministic before any check failed
                    checks = [
                        *checks,
                        C.Check(
                            device="fabric",
                            check="reachable",
                            subject=v.verdict.ended_by,
                            passed=False,
                            expected="settles",
                            observed=v.verdict.reason,
                        ),
                    ]
                return checks, v.summary()
        names = sorted(fleet.conns)
        results = await fleet.run(names, ops.pending)
        return [
            C.Check(
                device=n,
                check="reachable",
                subject="no unconfirmed commit",
                passed=r.ok and r.value is False,
                expected="no pending commit",
                observed=r.error or ("pending" if r.value else "none"),
            )
            for n, r in results.items()
        ], None
