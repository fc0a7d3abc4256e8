"""Drift: the actual state of every deployed target against what Lintas last deployed to it.

For each target in the target store (written by verify after a confirmed deploy):

* **config drift**: the last deployed artifacts are loaded as a replace candidate and
  ``compare_config`` answers what the device would change to get back to them (FRR
  running config and the managed Linux side). Nothing is committed; the candidate is
  discarded. A non-empty answer is the exact difference, masked;
* **behind**: the target's last applied commit is not the head of its branch (a lost
  event, a failed run), so the head was never applied;
* an unconfirmed commit pending on a device is reported too; one that no live run owns
  (its run ended, crashed for good, or it is not a Lintas run's) is an alarm of its own,
  ``pending_orphan``, naming the run that made it and the seconds left on its timer: nobody
  will confirm it, so the device will restore itself when the timer fires. Remediation
  rolls such a commit back at once (what its timer would do) before starting its run.

Every target is read concurrently, each through one session (issue 16): the switches' SSH
sessions open at once while the artifacts load and the leases are taken, and a switch whose
running state still has its recorded fingerprint is read in one exec (running config and pending
commit together); the hosts are read at the same time as the switches. The report's ``timings``
say where the time went.

:func:`scan` returns a :class:`DriftReport`; :func:`publish` stores it as
``drift/latest.json`` and publishes it on ``lintas.notify.drift``. Remediation (off by
default) is a normal pipeline run for the branch head, through every gate.

Hypervisor hosts (:func:`workers.hosts.ops.drift`): the OVS/OVN rows and keys, the tunnel
address, and the domains against the last deployed bundle: on ``kvm`` hosts each Lintas
domain's definition (semantic compare with the deployed XML) and power state, on
``openstack`` hosts each nova domain against the modelled instance (MACs, bridges,
vCPUs, memory). Read-only: nothing on a host is changed by a scan.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import structlog
from pydantic import BaseModel, ConfigDict, Field

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.bus import Topology
from lintas.engine.client import publish_push
from lintas.engine.errors import InputError, LintasError, LockHeldError
from lintas.engine.events import PushEvent, manual_event_id
from lintas.engine.gitrepo import MirrorCache
from lintas.engine.locks import Lease, LeaseLocks
from lintas.engine.repos import RepoRegistry
from lintas.engine.settings import Settings
from lintas.engine.store import RunStore
from lintas.engine.targets import TargetState, TargetStore
from lintas.workers.deploy.common import load_bundle
from lintas.workers.deploy.connect import ConnectError
from lintas.workers.deploy.fleet import Fleet
from lintas.workers.deploy.hostfleet import HostFleet
from lintas.workers.deploy.ops import PendingCommit, pending_commit, restore, running_fingerprint
from lintas.workers.hosts import ops as host_ops
from lintas.workers.model import InfraModel
from lintas.workers.model.revision import load_model_at

log = structlog.get_logger("lintas.drift")
DRIFT_OWNER = "drift-scan"
DriftState = Literal["in_sync", "drifted", "behind", "pending_orphan", "unreachable", "unknown"]
MAX_LINES = 200


class TargetDrift(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str
    kind: Literal["device", "host"]
    repo: str
    state: DriftState
    deployed_commit: str
    head_commit: str | None = None
    behind: bool = False  # the branch head was never applied here
    differences: list[str] = Field(default_factory=list)  # what differs from the last deployed config
    pending_commit: bool = False
    pending_run: str | None = None  # the run that made the pending commit (None: unknown origin)
    pending_seconds_left: int | None = None  # on the device's revert timer
    error: str | None = None


class DriftReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checked_at: datetime
    duration_s: float
    targets: list[TargetDrift]
    timings: dict[str, float] = Field(default_factory=dict)  # seconds per phase (switches and hosts overlap)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for t in self.targets:
            out[t.state] += 1
        return dict(out)

    @property
    def drifted(self) -> list[TargetDrift]:
        return [t for t in self.targets if t.state != "in_sync"]


class _Read:
    """The answers of one combined read (``get_running_and_pending``), served to the ops that
    take a driver: the fingerprint and the pending commit are computed as everywhere else."""

    def __init__(self, running: str, pending: dict[str, Any] | None) -> None:
        self._running, self._pending = running, pending

    def get_config(self, retrieve: str = "all", full: bool = False, sanitized: bool = False) -> dict[str, str]:
        return {"running": self._running, "startup": "", "candidate": ""}

    def get_pending_commit(self) -> dict[str, Any] | None:
        return self._pending


def _drift_op(
    driver: Any, name: str, *, bundles: dict[str, dict[str, str]], fingerprints: dict[str, str | None]
) -> tuple[str, PendingCommit | None, str | None]:
    """(difference, commit pending, problem): a candidate that cannot be built (a secret that
    does not resolve here) is a problem of this scan, not an unreachable device.

    Fast path: when the running state still has the fingerprint recorded at the confirmed
    deploy, nothing changed and no candidate is loaded (frr-reload.py is the costly part)."""
    known = fingerprints.get(name)
    both = getattr(driver, "get_running_and_pending", None)
    if known is not None and both is not None:  # the running state and the pending commit in one exec
        read = _Read(*both())
        if running_fingerprint(cast(Any, read), name) == known:
            return "", pending_commit(cast(Any, read), name), None
    elif known is not None and running_fingerprint(driver, name) == known:
        return "", pending_commit(driver, name), None
    try:
        driver.load_replace_candidate(config=bundles[name])
    except LintasError as exc:
        return "", None, f"cannot build the last deployed candidate: {exc}"
    try:
        diff = str(driver.compare_config())
    finally:
        driver.discard_config()
    return diff, pending_commit(driver, name), None


async def scan(settings: Settings, topo: Topology, mirror: MirrorCache) -> DriftReport:
    t0 = time.monotonic()
    states = await TargetStore(topo.targets).all()
    registry = RepoRegistry(settings.home).load()
    store = NatsArtifactStore(topo.artifacts)
    out: list[TargetDrift] = []
    heads: dict[str, str | None] = {}
    runs = RunStore(topo.runs)
    groups: dict[tuple[str, str], list[TargetState]] = defaultdict(list)
    for st in states.values():
        entry = registry.get(st.repo)
        if st.repo not in heads:
            try:
                heads[st.repo] = await asyncio.to_thread(mirror.head, entry.url, entry.default_ref) if entry else None
            except LintasError:
                heads[st.repo] = None
        if entry is None:
            out.append(_entry(st, None, "unknown", error=f"repo {st.repo} is not registered"))
        else:
            groups[(entry.url, st.commit)].append(st)
    timings: dict[str, float] = {"heads": round(time.monotonic() - t0, 3)}
    # every (repo, commit) group at once: each target is read through its own session, concurrently
    for got in await asyncio.gather(
        *(
            _scan_devices(_Scan(settings, topo, mirror, store, heads, timings), url, commit, members)
            for (url, commit), members in groups.items()
        )
    ):
        out += got
    for i, t in enumerate(out):  # a pending commit no live run owns: nobody will confirm it
        if t.pending_commit and not await _live(runs, t.pending_run):
            out[i] = t.model_copy(update={"state": "pending_orphan"})
    out.sort(key=lambda t: t.target)
    return DriftReport(
        checked_at=datetime.now(UTC), duration_s=round(time.monotonic() - t0, 3), targets=out, timings=timings
    )


async def _bundle(store: NatsArtifactStore, st: TargetState) -> tuple[dict[str, str], str | None]:
    async def blob(cid: str) -> bytes | None:
        return await store.get_blob(cid)

    got = await asyncio.gather(*(blob(cid) for cid in st.artifacts.values()))
    for cid, data in zip(st.artifacts.values(), got, strict=True):
        if data is None:
            return {}, f"artifact {cid} of the last deploy is no longer stored"
    return {art: data.decode() for art, data in zip(st.artifacts, got, strict=True) if data is not None}, None


def _connected(driver: Any, name: str) -> None:
    """Nothing: running it opens the switch's one SSH session (nornir opens it on first use)."""


async def _open_fleet(model: InfraModel, settings: Settings, names: list[str]) -> Fleet:
    fleet = await asyncio.to_thread(Fleet, model, settings, names)
    await fleet.run(names, _connected)  # a failure is retried (and reported) by the scan's own read
    return fleet


async def _lease(locks: LeaseLocks, name: str) -> Lease | str:
    try:
        return await locks.acquire(name, DRIFT_OWNER)
    except LockHeldError as exc:
        return f"not scanned: {exc}"


@dataclass(frozen=True)
class _Scan:
    """What every (repo, commit) group of one scan shares: where to read, and what it fills in
    (the branch heads read once, the phases' timings)."""

    settings: Settings
    topo: Topology
    mirror: MirrorCache
    store: NatsArtifactStore
    heads: dict[str, str | None]
    timings: dict[str, float]


async def _scan_devices(scan: _Scan, url: str, commit: str, members: list[TargetState]) -> list[TargetDrift]:
    t0 = time.monotonic()
    try:
        model = await asyncio.to_thread(load_model_at, scan.mirror, url, commit)
    except (InputError, LintasError) as exc:
        return [_entry(st, scan.heads[st.repo], "unknown", error=f"model at {commit[:8]}: {exc}") for st in members]
    scan.timings["model"] = round(time.monotonic() - t0, 3)
    host_members = [st for st in members if st.kind == "host"]
    members = [st for st in members if st.kind != "host"]

    async def hosts_timed() -> list[TargetDrift]:
        t = time.monotonic()
        try:
            return await _scan_hosts(scan.settings, scan.topo, model, scan.store, host_members, scan.heads)
        finally:
            scan.timings["hosts"] = round(time.monotonic() - t, 3)

    # hosts are read (OVSDB, libvirt, SSH) while the switches are compared: the scan takes the longer of the two
    host_scan = asyncio.create_task(hosts_timed())
    t1 = time.monotonic()
    names = [st.target for st in members if st.target in model.devices]
    # the switches' SSH sessions open (one per switch, in threads) while the artifacts load and the leases are taken
    opening = asyncio.create_task(_open_fleet(model, scan.settings, names))
    got = await asyncio.gather(*(_bundle(scan.store, st) for st in members))
    bundles = {st.target: b for st, (b, _) in zip(members, got, strict=True)}
    missing = {st.target: err for st, (_, err) in zip(members, got, strict=True) if err is not None}
    # a scan loads a candidate on the device: never while a run holds the device (it would
    # clobber that run's candidate); such a device is reported unknown this time
    locks = LeaseLocks(scan.topo.locks, ttl_s=scan.settings.deploy.lease_ttl_s)
    wanted = [n for n in names if n not in missing]
    leases: dict[str, Lease] = {}
    for n, lease in zip(wanted, await asyncio.gather(*(_lease(locks, n) for n in wanted)), strict=True):
        if isinstance(lease, str):
            missing[n] = lease
        else:
            leases[n] = lease
    pend_only: dict[str, Any] = {}
    try:
        try:
            fleet = await opening
        except ConnectError as exc:
            return await host_scan + [_entry(st, scan.heads[st.repo], "unreachable", error=str(exc)) for st in members]
        try:
            # a device a run holds is not compared, but its pending commit is read (read-only):
            # the run holding it may be dead
            results, pend_only = await asyncio.gather(
                fleet.run(
                    sorted(leases),
                    _drift_op,
                    bundles=bundles,
                    fingerprints={st.target: st.fingerprint for st in members},
                ),
                fleet.run([n for n in names if n not in leases], pending_commit),
            )
        finally:
            await asyncio.to_thread(fleet.close)
    finally:
        await asyncio.gather(*(locks.release(lease) for lease in leases.values()))
    scan.timings["switches"] = round(time.monotonic() - t1, 3)
    out = await host_scan
    for st in members:
        head = scan.heads[st.repo]
        if st.target in missing or st.target not in results:
            po = pend_only.get(st.target)
            pend = po.value if po is not None and po.ok else None
            out.append(
                _entry(st, head, "unknown", error=missing.get(st.target, "not a device of its model"), pending=pend)
            )
            continue
        r = results[st.target]
        if not r.ok or r.value is None:
            out.append(_entry(st, head, "unreachable", error=r.error))
            continue
        diff, pending, problem = r.value
        if problem is not None:
            out.append(_entry(st, head, "unknown", error=problem))
            continue
        lines = [ln for ln in diff.splitlines() if ln.strip()]
        state: DriftState = "drifted" if lines else ("behind" if head and head != st.commit else "in_sync")
        out.append(_entry(st, head, state, differences=lines[:MAX_LINES], pending=pending))
    return out


async def _scan_hosts(
    settings: Settings,
    topo: Topology,
    model: InfraModel,
    store: NatsArtifactStore,
    members: list[TargetState],
    heads: dict[str, str | None],
) -> list[TargetDrift]:
    out: list[TargetDrift] = []
    bundles: dict[str, dict[str, str]] = {}
    for st in members:
        bundle = await load_bundle(store, st.artifacts)
        if st.target not in model.hosts:
            out.append(_entry(st, heads[st.repo], "unknown", error="not a host of its model"))
        elif bundle is None:
            out.append(
                _entry(st, heads[st.repo], "unknown", error="an artifact of the last deploy is no longer stored")
            )
        else:
            bundles[st.target] = bundle
    locks = LeaseLocks(topo.locks, ttl_s=settings.deploy.lease_ttl_s)
    leases: dict[str, Lease] = {}
    for name in list(bundles):  # a run changing the host would show as drift: skip it this time
        try:
            leases[name] = await locks.acquire(name, DRIFT_OWNER)
        except LockHeldError as exc:
            st = next(s for s in members if s.target == name)
            out.append(_entry(st, heads[st.repo], "unknown", error=f"not scanned: {exc}"))
            del bundles[name]
    try:
        try:
            hosts = HostFleet(model, settings, bundles)
        except ConnectError as exc:
            return out + [
                _entry(st, heads[st.repo], "unreachable", error=str(exc)) for st in members if st.target in bundles
            ]
        results = await hosts.run(bundles, lambda c: host_ops.drift(c, bundles[c.name], hosts.timeout_s))
    finally:
        for lease in leases.values():
            await locks.release(lease)
    for st in members:
        if st.target not in bundles:
            continue
        r, head = results[st.target], heads[st.repo]
        if not r.ok or r.value is None:
            out.append(_entry(st, head, "unreachable", error=r.error))
            continue
        state: DriftState = "drifted" if r.value else ("behind" if head and head != st.commit else "in_sync")
        out.append(_entry(st, head, state, differences=r.value[:MAX_LINES]))
    return out


def _entry(
    st: TargetState,
    head: str | None,
    state: DriftState,
    *,
    error: str | None = None,
    differences: list[str] | None = None,
    pending: PendingCommit | None = None,
) -> TargetDrift:
    return TargetDrift(
        target=st.target,
        kind=st.kind,
        repo=st.repo,
        state=state,
        deployed_commit=st.commit,
        head_commit=head,
        behind=bool(head and head != st.commit),
        differences=differences or [],
        pending_commit=pending is not None,
        pending_run=pending.run_id if pending else None,
        pending_seconds_left=pending.seconds_left if pending else None,
        error=error,
    )


async def _live(runs: RunStore, run_id: str | None) -> bool:
    """Whether ``run_id`` is a run that may still confirm its commit (not ended)."""
    if run_id is None:
        return False
    got = await runs.get(RunStore.key(run_id))
    return got is not None and not got[0].state.terminal


async def publish(topo: Topology, report: DriftReport) -> None:
    data = report.model_dump_json().encode()
    await NatsArtifactStore(topo.artifacts).put_doc(S.drift_report_doc(), data)
    await topo.js.publish(S.DRIFT_EVENT, data, stream=S.NOTIFY_STREAM)


async def latest(topo: Topology) -> DriftReport | None:
    raw = await NatsArtifactStore(topo.artifacts).get_doc(S.drift_report_doc())
    return DriftReport.model_validate_json(raw) if raw else None


async def remediate(
    settings: Settings,
    topo: Topology,
    report: DriftReport,
    *,
    actor: str,
    mirror: MirrorCache,
    notes: list[str] | None = None,
) -> list[str]:
    """Off by default (``lintas drift --remediate``): mark every drifted device in the target
    store, so the next plan re-applies it, and start a normal run (every gate, approvals
    included) for the branch head of each repo with a drifted, behind or ``pending_orphan``
    target. An orphaned pending commit is rolled back first (what its own timer would do:
    nobody confirms it), so that the run's deploy does not meet another run's commit. A host's
    run re-applies its OVS state and its own domains; nova domains are never changed (their
    drift stays reported). Returns the run ids; what happened to each orphan goes to ``notes``."""
    targets = TargetStore(topo.targets)
    done = await _roll_back_orphans(settings, topo, mirror, [t for t in report.targets if t.state == "pending_orphan"])
    if notes is not None:
        notes += done
    repos: dict[str, str] = {}
    for t in report.targets:
        if t.head_commit is None or t.state not in ("drifted", "behind", "pending_orphan"):
            continue
        if t.state in ("drifted", "pending_orphan"):
            st = await targets.get(t.target)
            if st is not None:
                await targets.put(st.model_copy(update={"drift": t.differences or ["(differs)"]}))
        repos[t.repo] = t.head_commit
    registry = RepoRegistry(settings.home).load()
    runs = []
    for repo, head in sorted(repos.items()):
        entry = registry[repo]
        ev = PushEvent(
            event_id=manual_event_id(),
            occurred_at=datetime.now(UTC),
            repo=repo,
            url=entry.url,
            ref=entry.default_ref,
            sha=head,
            author=actor,
            message="drift remediation",
            source="manual",
        )
        await publish_push(topo.js, ev)
        runs.append(ev.run_id)
    return runs


async def _roll_back_orphans(
    settings: Settings, topo: Topology, mirror: MirrorCache, orphans: list[TargetDrift]
) -> list[str]:
    """Roll back each orphaned pending commit now (under the drift lease; a device a live run
    holds is left to that run), leaving the device at its last confirmed config."""
    out: list[str] = []
    registry = RepoRegistry(settings.home).load()
    locks = LeaseLocks(topo.locks, ttl_s=settings.deploy.lease_ttl_s)
    for t in orphans:
        entry = registry.get(t.repo)
        if entry is None:
            continue
        try:
            lease = await locks.acquire(t.target, DRIFT_OWNER)
        except LockHeldError as exc:
            out.append(f"{t.target}: orphaned commit of run {t.pending_run} not rolled back: {exc}")
            continue
        try:
            model = await asyncio.to_thread(load_model_at, mirror, entry.url, t.deployed_commit)
            fleet = await asyncio.to_thread(Fleet, model, settings, [t.target])
            try:
                # ``restore`` rolls back only the commit of the run named here, re-read on the device
                res = await fleet.run([t.target], restore, checkpoints={}, run_id=t.pending_run or "")
            finally:
                await asyncio.to_thread(fleet.close)
            r = res[t.target]
            out.append(
                f"{t.target}: orphaned commit of run {t.pending_run}: "
                + (r.value or "")
                + (f" (error: {r.error})" if r.error else "")
            )
        except (InputError, LintasError, ConnectError) as exc:
            out.append(f"{t.target}: orphaned commit of run {t.pending_run} not rolled back: {exc}")
        finally:
            await locks.release(lease)
    return out


async def drift_service(settings: Settings, topo: Topology) -> None:
    """The periodic reconcile `lintas up` runs (``lintas.services`` entry point): every
    ``drift_interval_s`` (0: off) scan, store and publish the report, and start remediation
    runs when ``drift_remediate`` is set."""
    if settings.drift_interval_s <= 0:
        return
    mirror = MirrorCache(settings.cache_dir)
    try:
        while True:
            await asyncio.sleep(settings.drift_interval_s)
            try:
                report = await scan(settings, topo, mirror)
                await publish(topo, report)
                log.info("drift scan", **report.counts(), duration_s=report.duration_s)
                if settings.drift_remediate and report.drifted:
                    notes: list[str] = []
                    runs = await remediate(settings, topo, report, actor="drift-reconcile", mirror=mirror, notes=notes)
                    for note in notes:
                        log.warning("drift remediation", detail=note)
                    log.warning("drift remediation started", runs=runs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed scan must not stop the next one
                log.warning("drift scan failed", error=str(exc))
    finally:
        mirror.close()
