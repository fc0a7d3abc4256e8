"""The ``verify`` stage: the fabric and the hosts against the model, then confirm the run's commits.

Every switch of the model is checked (:mod:`workers.deploy.checks`) until the fabric has settled
(:mod:`workers.deploy.fabric_verify`, :mod:`workers.deploy.settle`: stable, settled failing,
a deterministic failure, or ``verify_timeout`` as the bound; the summary's ``ended_by`` says which),
with the pings only for the pairs the run's changes can affect; every host the run changed, or
whose leaf it changed (:func:`workers.hosts.ops.checks`: OVS/OVN state and health, the tunnel
address, the uplink's full-MTU don't-fragment pings to its gateway and tunnel peers, each modelled
domain's state, vCPUs, memory and every NIC's MAC and bridge) is read by the same stability rule
(the summary's ``hosts.ended_by``). On success every commit of this run pending
on a switch is confirmed, found on the devices themselves and not only in the record (a commit
confirmed before a crash is recognised by its checkpoint); the devices are read again, and the
stage fails while any commit of the run is still pending. Only then does the target store
record the new last-known-good state; a device whose timer already restored it fails the stage. The
full report is stored as ``verify/<run>/<stage>.json``; failing checks go on the run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext, StageResult
from lintas.engine.targets import TargetState, TargetStore
from lintas.workers.deploy import checks as C
from lintas.workers.deploy import faults, ops
from lintas.workers.deploy.common import (
    check_lines,
    load_bundle,
    load_model_of,
    locks_for,
    release_all,
    uplink_probes,
    verify_hosts,
)
from lintas.workers.deploy.connect import ConnectError
from lintas.workers.deploy.fabric_verify import Answered, Settling, verify_fabric
from lintas.workers.deploy.fleet import Fleet, Outcome
from lintas.workers.deploy.hostfleet import HostFleet
from lintas.workers.deploy.record import DeployRecord, load_record, now, save_record
from lintas.workers.model import InfraModel

MAX_CHECKS_ON_RUN = 100


class VerifyStage:
    kind: ClassVar[str] = "verify"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def run(self, ctx: StageContext) -> StageResult:
        job = ctx.job
        t0 = time.monotonic()
        store = NatsArtifactStore(ctx.topology.artifacts)
        # the model at the commit and the deployment record at once; no session opens before the checks:
        # the first read opens each switch's, and reads it right away (one exec)
        model, record = await asyncio.gather(load_model_of(ctx, job.sha), load_record(store, job.run_id))
        t_loaded = time.monotonic()
        if isinstance(model, str):
            return StageResult.failed(model)
        devices = sorted(model.devices)
        try:
            fleet = await asyncio.to_thread(Fleet, model, ctx.settings, devices)
        except ConnectError as exc:
            return StageResult.failed(f"cannot connect: {exc}")
        deletions = record.allow_deletions if record is not None else ctx.settings.deploy.allow_deletions
        try:
            # the bundles of the hosts this run changed or whose leaf it changed (all deployed hosts
            # without a record: a switch change leaves a host's OVS and domains alone, but not its
            # uplink; drift watches the others)
            deployed = await TargetStore(ctx.topology.targets).all()
            bundles = await host_bundles(store, record, _hosts_to_check(record, model), deployed)
            up = _hosts_up(record, model, deployed)
            try:
                hosts = HostFleet(model, ctx.settings, bundles)
            except ConnectError as exc:
                return StageResult.failed(f"cannot connect: {exc}")
            t1 = time.monotonic()
            fabric, on_hosts = await asyncio.gather(
                verify_fabric(
                    fleet,
                    model,
                    devices,
                    log=ctx.log,
                    settling=Settling.of("verify", ctx.settings.deploy),
                    changed=_changed(record),
                ),
                verify_hosts(
                    hosts,
                    bundles,
                    log=ctx.log,
                    settling=Settling.of("verify", ctx.settings.deploy),
                    deletions_allowed=deletions,
                    probes={n: uplink_probes(model, n, up) for n in bundles},
                ),
            )
            # a commit of this run its device-side timer restored already (the engine was down longer
            # than revert_in): the last read found nothing pending there (no exec more when it did)
            gone = await self._gone(ctx, fleet, store, record, fabric.pending)
            if gone is not None:
                return gone
            checks = fabric.checks + on_hosts.checks
            report = S.verify_report_doc(job.run_id, job.stage)
            await store.put_doc(report, json.dumps([c.model_dump(mode="json") for c in checks]).encode())
            # where the stage's time went before the confirm (the rest of its duration is confirming)
            phases = {
                "before_checks_s": round(t1 - t0, 3),
                "model_and_record_s": round(t_loaded - t0, 3),  # concurrently
                "checks_s": round(time.monotonic() - t1, 3),  # the first read opens each switch's session
            }
            summary: dict[str, Any] = {
                "report": report,
                "totals": C.summary(checks),
                **fabric.summary(),
                "hosts": on_hosts.summary(),
                "phases": phases,
                "checks": [c.model_dump(mode="json") for c in C.failing(checks)][:MAX_CHECKS_ON_RUN],
            }
            if C.failing(checks):
                for line in check_lines(checks, limit=40):
                    await ctx.log.error(f"check failed: {line}")
                ended = fabric.verdict if C.failing(fabric.checks) or not fabric.verdict.passed else on_hosts.verdict
                return StageResult.failed(
                    f"{C.summary(checks)['failed']} check(s) failed ({ended.ended_by}: "
                    f"{ended.reason}): " + "; ".join(check_lines(checks, limit=8)),
                    summary=summary,
                )
            for verdict in (fabric.verdict, on_hosts.verdict):
                if not verdict.passed:  # a deterministic failure found before any check failed
                    return StageResult.failed(f"{verdict.ended_by}: {verdict.reason}", summary=summary)
            found = await self._pending_on_devices(ctx, fleet, record, fabric.pending)
            if isinstance(found, StageResult):
                return found
            if record is None:
                return StageResult.ok({**summary, "confirmed": []})
            await faults.reach(ctx.settings.home, "verify.before_confirm")
            return await self._confirm(ctx, fleet, store, record, summary, found)
        finally:
            await asyncio.to_thread(fleet.close)

    async def _gone(
        self,
        ctx: StageContext,
        fleet: Fleet,
        store: NatsArtifactStore,
        record: DeployRecord | None,
        known: dict[str, Answered],
    ) -> StageResult | None:
        """Commits the record calls this run's and pending that are no longer on their device (its
        timer restored it: the engine was down longer than ``revert_in``). Verify cannot pass
        then, and never confirms such a device: the stage fails naming what was lost. ``known``:
        each switch's pending commit as verification's last read found it; only a committed switch
        with none pending is read again (its pending commit and the checkpoint it runs)."""
        committed = _committed(record, fleet)
        if record is None or not committed:
            return None
        unsure = [n for n in committed if n not in known or known[n].get_pending_commit() is None]
        states = await fleet.run(unsure, ops.commit_state)
        gone = []
        for name in unsure:
            r = states[name]
            if r.ok and r.value is not None and r.value[0] is None and r.value[1] != record.targets[name].checkpoint:
                gone.append(name)  # unreachable ones are left to the checks
        if not gone:
            return None
        for name in gone:
            t = record.targets[name]
            t.status, t.error = (
                "reverted",
                (
                    f"commit {t.checkpoint} of this run is gone: the device-side timer "
                    "restored the checkpoint before confirmation"
                ),
            )
            await ctx.log.error(f"{name}: {t.error}")
        await save_record(store, record)
        lost = "; ".join(f"{n}: lost {', '.join(_diff_lines(record.targets[n].diff)) or 'its change'}" for n in gone)
        return StageResult.failed(
            f"the change did not stick on {', '.join(gone)}: its device-side timer "
            f"restored the checkpoint before verify could confirm it ({lost})"
        )

    async def _pending_on_devices(
        self, ctx: StageContext, fleet: Fleet, record: DeployRecord | None, known: dict[str, Answered]
    ) -> list[str] | StageResult:
        """Every switch's pending commit, read on the device (not only in the record): this run's
        are returned (confirm covers them); another run's on a device this run touched fails.
        ``known``: what verification's last read found (the same exec read it), else read now."""
        run_id = ctx.job.run_id
        results: dict[str, Outcome[ops.PendingCommit | None]]
        if set(fleet.conns) <= set(known):
            results = {n: Outcome(ops.pending_commit(cast(Any, known[n]), n), None) for n in sorted(fleet.conns)}
        else:
            results = await fleet.run(sorted(fleet.conns), ops.pending_commit)
        ours: list[str] = []
        foreign: list[str] = []
        touched = set(record.rolled_out) if record is not None else set()
        for name in sorted(results):
            r = results[name]
            if not r.ok:
                if name in touched:
                    foreign.append(f"{name}: cannot read its pending commit: {r.error}")
                continue
            pend = r.value
            if pend is None:
                continue
            if pend.run_id == run_id and pend.status == "pending":
                ours.append(name)
            elif name in touched:
                foreign.append(f"{name}: holds {pend.describe()}")
            else:
                await ctx.log.warning(f"{name}: holds {pend.describe()} (a device this run did not change)")
        if ours and record is None:
            foreign += [f"{n}: holds a commit of this run, but the run has no deployment record" for n in ours]
        if foreign:
            return StageResult.failed("not confirmed: " + "; ".join(foreign))
        return ours

    async def _confirm(  # noqa: C901 - confirm, read back, record: each device's outcome in order, read top to bottom
        self,
        ctx: StageContext,
        fleet: Fleet,
        store: NatsArtifactStore,
        record: DeployRecord,
        summary: dict[str, Any],
        found: list[str],
    ) -> StageResult:
        for name in found:
            t = record.targets.get(name)
            if t is not None and t.status != "committed":
                await ctx.log.warning(
                    f"{name}: holds a pending commit of this run the record did not know "
                    f"({t.status}): confirming it too"
                )
                t.status, t.changed = "committed", True
        pending = record.with_status("committed")
        devices = [n for n in pending if record.targets[n].kind == "device"]
        checkpoints = {n: record.targets[n].checkpoint for n in devices}
        results: dict[str, Outcome[str]] = {}
        batches = [devices]
        if faults.armed("verify.partly_confirmed") and len(devices) > 1:  # TEST ONLY: stop half-way
            batches = [devices[:1], devices[1:]]
        for i, batch in enumerate(batches):
            if i:
                await faults.reach(ctx.settings.home, "verify.partly_confirmed")
            results.update(
                await fleet.run(
                    batch, ops.confirm, run_id=record.run_id, checkpoints=checkpoints, known_ours=frozenset(found)
                )
            )
        lost = []
        for name in pending:
            if record.targets[name].kind == "host":  # no device-side timer: verified is confirmed
                record.targets[name].status = "confirmed"
                continue
            r = results[name]
            if r.ok:
                record.targets[name].status = "confirmed"
                if r.value == "already_confirmed":
                    await ctx.log.info(f"{name}: confirmed already (before the restart)")
            else:
                record.targets[name].status, record.targets[name].error = "reverted", r.error
                record.targets[name].failure = r.failure
                lost.append(name)
        # no success while a device this run touched still holds one of its commits unconfirmed; the
        # fingerprints of the switches this run compared are read at the same time (one round trip)
        compared = set(record.rolled_out)
        good_now = {n for n in record.with_status("confirmed", "unchanged") if n in compared and n in fleet.conns}
        after = await fleet.run(sorted(set(devices) | good_now), _after_confirm, fingerprint=good_now)
        prints = {
            n: Outcome(r.value[1], None) if r.ok and r.value is not None else Outcome(None, r.error)
            for n, r in after.items()
            if n in good_now
        }
        for name in devices:
            a = after[name]
            p = Outcome(a.value[0], None) if a.ok and a.value is not None else Outcome(None, a.error)
            if name in lost:
                continue
            if not p.ok or (p.value is not None and p.value.run_id == record.run_id):
                record.targets[name].status = "committed"
                record.targets[name].error = p.error or "still pending after confirm_commit"
                lost.append(name)
        await save_record(store, record)
        if lost:
            detail = "; ".join(f"{n}: {record.targets[n].error}" for n in lost)
            return StageResult.failed(
                f"could not confirm the commit on {', '.join(lost)}: {detail}",
                summary={**summary, "confirmed": record.with_status("confirmed")},
            )
        targets = TargetStore(ctx.topology.targets)
        good = record.with_status("confirmed", "unchanged")
        # a fresh fingerprint only where this run compared the device with its candidate; a device
        # the plan left alone keeps its old one (and any drift mark): drift must stay visible
        for name in good:
            t = record.targets[name]
            fp: str | None
            drift: list[str]
            if name in prints:
                fp, drift = (prints[name].value if prints[name].ok else None), []
            elif t.kind == "host" and name in compared:  # just converged and verified
                fp, drift = None, []
            else:
                old = await targets.get(name)
                fp, drift = (old.fingerprint, old.drift) if old is not None else (None, [])
            await targets.put(
                TargetState(
                    target=name,
                    kind=t.kind,
                    repo=record.repo,
                    commit=record.sha,
                    run_id=record.run_id,
                    artifacts=t.artifacts,
                    deployed_at=now(),
                    fingerprint=fp,
                    drift=drift,
                )
            )
        await release_all(locks_for(ctx), record.run_id, record.rolled_out)
        await ctx.log.info(f"confirmed {len(pending)} commit(s); last-known-good is now {record.sha[:8]}")
        return StageResult.ok({**summary, "confirmed": pending})


async def host_bundles(
    store: NatsArtifactStore, record: DeployRecord | None, names: list[str], deployed: Mapping[str, TargetState]
) -> dict[str, dict[str, str]]:
    """Each host's bundle as this run deployed it, else as ``deployed`` last (the target store);
    never-deployed hosts are left out."""
    out = {}
    for name in names:
        t = record.targets.get(name) if record else None
        arts = (
            t.artifacts
            if t is not None and t.status not in ("skipped", "pending")
            else (deployed[name].artifacts if name in deployed else None)
        )
        bundle = await load_bundle(store, arts)
        if bundle is not None:
            out[name] = bundle
    return out


def _after_confirm(driver: Any, name: str, *, fingerprint: set[str]) -> tuple[ops.PendingCommit | None, str | None]:
    """The pending commit after confirming and, for a switch this run compared, the fingerprint of
    its running state: one exec where the driver reads both at once."""
    if name not in fingerprint:
        return ops.pending_commit(driver, name), None
    both = getattr(driver, "get_running_and_pending", None)
    if both is None:
        return ops.pending_commit(driver, name), ops.running_fingerprint(driver, name)
    running, pending = both()
    read = Answered(pending, running)
    return ops.pending_commit(cast(Any, read), name), ops.running_fingerprint(cast(Any, read), name)


def _committed(record: DeployRecord | None, fleet: Fleet) -> list[str]:
    """The switches the record says carry a pending commit of this run."""
    if record is None:
        return []
    return [
        n
        for n in record.with_status("committed")
        if record.targets[n].kind == "device" and n in fleet.conns and record.targets[n].checkpoint
    ]


def _hosts_to_check(record: DeployRecord | None, model: InfraModel) -> list[str]:
    """The hosts this run changed, and those whose leaf it changed (their uplink probes test the
    leaf's host port, VLAN and gateway); every host without a record."""
    if record is None:
        return sorted(model.hosts)

    def changed(n: str) -> bool:
        return n in record.targets and record.targets[n].changed

    return [n for n, h in sorted(model.hosts.items()) if changed(n) or changed(h.uplink.leaf)]


def _hosts_up(record: DeployRecord | None, model: InfraModel, deployed: Mapping[str, TargetState]) -> set[str]:
    """The hosts whose tunnel address is up (deployed before, or by this run): the tunnel peers probed."""
    ours = record.targets if record is not None else {}
    return {n for n in model.hosts if (n in deployed and deployed[n].artifacts) or n in ours}


def _changed(record: DeployRecord | None) -> set[str] | None:
    """The switches this run changed (their pairs are probed); None without a record: every pair."""
    if record is None:
        return None
    return {n for n, t in record.targets.items() if t.kind == "device" and t.changed}


def _diff_lines(diff: str, limit: int = 3) -> list[str]:
    """The first changed lines of a device's diff (section headers left out), for a message."""
    lines = [ln.strip() for ln in diff.splitlines() if ln.strip() and not ln.startswith(("[", "!", "~"))]
    return lines[:limit] + ([f"... {len(lines) - limit} more"] if len(lines) > limit else [])
