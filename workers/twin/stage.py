"""The ``twin`` stage (issue 18): the run's rendered artifacts deployed to, and verified on, a
throwaway twin of the model's switches and changed hosts, before production is touched.

1. read the render stage's plan (as deploy does: ``upstream(job, RenderSummary)``) and the model at the run's sha;
2. build a twin of the change's slice (below; :func:`workers.lab.twin.twin_up`, ``hold=True``: the twin
   lives only as long as this worker; a SIGKILLed worker's twin is swept by the next twin or ``lab down``),
   with the changed hosts (libvirtd, virtlogd, OVS and sshd in the twin's namespaces, as the lab runs them);
3. bring it to production's state first: each switch's and host's **last deployed artifacts** (the
   targets store), the switches all committed at once (one wave, no health gate: the start state is
   not under test) and confirmed, then the hosts applied in one wave, then the switches' BGP sessions
   waited for once (the health gate's rule on that one wave); a target never deployed stays at day 0;
4. deploy the run's artifacts to every switch and host of the slice through the deploy stage's own
   :class:`~workers.deploy.rollout.Rollout` (FRR driver, waves, commit-confirm with a revert
   timer, the health gate; the hosts' waves after, snapshot then apply), reached through the twin's
   management namespace with the twin's registered login, a host's libvirt and OVSDB on the twin
   host's own unix sockets (:mod:`workers.twin.reach`); no lease is taken and the rollout's record is
   kept under ``twin/<run>/``, never the deploy stage's;
5. verify with verify's checks and its stability rule: the fabric's
   (:func:`workers.deploy.fabric_verify.verify_fabric`) and the hosts' (:func:`workers.deploy.common.verify_hosts`:
   OVS, addresses, domains);
6. store ``twin/<run>.json`` (built, timings, every check with expected vs observed, pass/fail)
   and **always** tear the twin down (success, failure, timeout, cancellation).

Before 2., :mod:`workers.twin.gate` decides whether to build at all: a plan that changes nothing
deployable succeeds at once (nothing to prove); a machine that cannot build a twin, or a changed
switch no twin can build (its platform), fails the stage when the twin is required (the
pipeline's ``twin: {required: true}``, a policy's ``require_twin``) and otherwise leaves the
change *unproven*. A changed host no twin can build (its uplink leaf of another platform, or
removed from the model) is never proven: a required twin raises an approval reason naming it.
After 2., a changed switch or host the twin did not build is treated the same way
(:meth:`TwinStage._not_built`, :meth:`TwinStage._hosts_not_built`).

A failed twin fails the stage naming the failing checks. Production is never read nor written:
no production credential, lease or commit.

The twin holds the change's **slice** (:mod:`workers.twin.slice`), not the whole fabric: the changed
switches, every switch they peer with, an unchanged leaf carrying each network a changed leaf
carries (a change of every switch builds them all), and each changed host with its uplink leaf and
the leaf's peers. Only the slice is started and deployed to; verify checks the model restricted to
the built switches (:func:`~workers.twin.slice.restrict`) and the built hosts, and what it cannot
check there (sessions, remote VTEPs, routes and pings of switches not built, hosts not built) is
listed in the report's ``out_of_scope``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import ClassVar

from pydantic import ValidationError

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.contracts import TwinPhase as Phase
from lintas.engine.contracts import TwinReport, TwinSummary
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext, StageResult
from lintas.engine.targets import TargetStore
from lintas.workers.deploy import checks as C
from lintas.workers.deploy import ops
from lintas.workers.deploy.common import check_lines, plan_and_model, uplink_probes, verify_hosts
from lintas.workers.deploy.connect import ConnectError
from lintas.workers.deploy.fabric_verify import Settling, verify_fabric
from lintas.workers.deploy.record import DeployRecord, TargetResult
from lintas.workers.deploy.rollout import Fleets, Rollout
from lintas.workers.deploy.waves import Strategy, Wave, plan_waves
from lintas.workers.lab.cmd import LabError, find_tools
from lintas.workers.lab.twin import twin_down, twin_facts, twin_up
from lintas.workers.model.model import InfraModel
from lintas.workers.render.plan import Plan
from lintas.workers.twin import gate
from lintas.workers.twin.leaf_reach import leaf_changes
from lintas.workers.twin.reach import TwinFleet, TwinHostFleet
from lintas.workers.twin.slice import Slice, hosts_out_of_scope, out_of_scope, restrict, slice_of

MAX_CHECKS_ON_RUN = 40
MAX_OUT_OF_SCOPE_ON_RUN = 12


class TwinArtifacts(NatsArtifactStore):
    """The run's artifact store, with the twin rollout's documents kept under ``twin/<run>/``."""

    def __init__(self, ctx: StageContext) -> None:
        super().__init__(ctx.topology.artifacts)
        self._prefix = S.twin_docs_prefix(ctx.job.run_id)

    async def put_doc(self, name: str, data: bytes) -> None:
        await super().put_doc(self._prefix + name, data)

    async def get_doc(self, name: str) -> bytes | None:
        return await super().get_doc(self._prefix + name)


class TwinRollout(Rollout):
    """The deploy stage's rollout on a twin: a twin is nobody's production, so no lease (and no fence)."""

    def __init__(self, ctx: StageContext, model: InfraModel, record: DeployRecord, fleets: Fleets) -> None:
        d = ctx.settings.deploy
        opts = Strategy.model_validate(ctx.job.options)
        roles = {n: model.devices[n].role if n in model.devices else "host" for n in record.targets}
        waves = plan_waves(
            sorted(record.targets),
            roles,
            strategy=opts.strategy,
            canary=d.canary if opts.canary is None else opts.canary,
            batch_size=d.batch_size if opts.batch_size is None else opts.batch_size,
        )
        record.waves = [w.devices for w in waves]
        for w in waves:
            for n in w.devices:
                record.targets[n].wave = w.index
        super().__init__(ctx, model, record, waves, fleets, opts.health_timeout or d.health_timeout_s)
        self.store = TwinArtifacts(ctx)

    async def lease_all(self) -> None:
        return None

    def fence(self, name: str) -> None:
        return None

    async def assert_lease(self, name: str) -> None:
        return None

    async def commit_at_once(self) -> list[str]:
        """The twin's start: every switch of the record committed in one wave (``all_at_once``), then
        every host applied in one, no health gate (the start state is not under test: its sessions are
        waited for once after). Returns the switches and hosts that failed."""
        switches = sorted(n for n, t in self.record.targets.items() if t.kind != "host")
        hosts = sorted(n for n, t in self.record.targets.items() if t.kind == "host")
        self.waves = [Wave(index=0, kind="all", devices=switches), Wave(index=1, kind="hosts", devices=hosts)]
        self.record.waves = [w.devices for w in self.waves]
        for w in self.waves:
            for n in w.devices:
                self.record.targets[n].wave = w.index
        await self._load_bundles()
        failed = await self.switch_wave(self.waves[0]) if switches else []
        if hosts and not failed:
            failed += await self.host_wave(self.waves[1])
        return failed


def twin_name(run_id: str) -> str:
    return "run-" + hashlib.sha256(run_id.encode()).hexdigest()[:12]


class TwinStage:
    kind: ClassVar[str] = "twin"

    def __init__(self, settings: Settings, probe: gate.Probe = find_tools) -> None:
        self._settings = settings
        self.probe = probe  # can a twin be built on this machine (workers/twin/gate.py)

    async def run(self, ctx: StageContext) -> StageResult:
        job = ctx.job
        try:
            Strategy.model_validate(job.options)
        except ValidationError as exc:
            return StageResult.failed(f"twin options (`with:` of stage {job.stage}): {exc.errors()[0]['msg']}")
        store = NatsArtifactStore(ctx.topology.artifacts)
        got = await plan_and_model(ctx, store, "twin")  # as deploy reads them
        if isinstance(got, str):
            return StageResult.failed(got)
        plan, model = got
        g = await gate.check(ctx, plan, model, self.probe)  # nothing to prove, or no twin can be built here
        if isinstance(g, StageResult):
            return g
        cut = slice_of(model, plan, await leaf_changes(model, plan, store.get_blob))  # hosts its leaves reach
        report = TwinReport(
            run_id=job.run_id,
            sha=job.sha,
            switches=sorted(cut.switches),
            hosts=sorted(cut.hosts),
            slice={**cut.switches, **cut.hosts},
            whole=cut.whole,
            out_of_scope=list(cut.notes),
            unproven=g.changed.unproven(),
        )
        try:
            failure = await self._in_twin(ctx, model, plan, cut, report, g)
        except BaseException as exc:  # a timeout or a cancellation: the report still says how far it got
            report.error = report.error or f"{type(exc).__name__}: {exc}"[:600]
            raise
        finally:
            await asyncio.shield(
                store.put_doc(S.twin_report_doc(job.run_id), report.model_dump_json(indent=1).encode())
            )
        return gate.recorded(self.result(report, failure), g)

    async def _in_twin(
        self, ctx: StageContext, model: InfraModel, plan: Plan, cut: Slice, report: TwinReport, g: gate.Gate
    ) -> str | None:
        """Build the slice, start, deploy, verify: the failure, or None; the twin is torn down whatever
        happens (its time in the report)."""
        name = twin_name(ctx.job.run_id)
        built = False
        t = time.monotonic()
        try:
            repo = await asyncio.to_thread(ctx.checkout)
            record = await twin_up(
                ctx.settings,
                repo,
                name=name,
                only=None if cut.whole else cut.names,
                hosts=cut.host_names or None,
                hold=True,
            )
            built = True
            report.twin, report.prefix, report.hosts = record.name, record.prefix, sorted(record.hosts)
            report.phases.append(Phase(name="build", seconds=time.monotonic() - t, ok=True))
            failed = await self._not_built(ctx, model, record.switches, report, g)
            if failed is not None:
                return failed
            await self._hosts_not_built(ctx, record.hosts, report, g)
            # the model the twin holds: what it starts, deploys and verifies (its switches, the links,
            # networks and sessions among them); the rest of verify's checks are out of its scope
            held = restrict(model, record.switches)
            report.switches = sorted(held.devices)
            report.out_of_scope += out_of_scope(model, held) + hosts_out_of_scope(model, record.hosts)
            hosts = f" and {len(record.hosts)} host(s) {', '.join(record.hosts)}" if record.hosts else ""
            await ctx.log.info(
                f"twin {record.prefix}: {len(record.switches)} of {len(model.devices)} switch(es){hosts} up"
                + ("" if cut.whole else f" (the change's slice: {'; '.join(cut.lines())})")
            )
            return await self.prove(ctx, held, plan, report, name)
        except (LabError, ConnectError) as exc:
            if not built:
                report.phases.append(Phase(name="build", seconds=time.monotonic() - t, ok=False, detail=str(exc)))
            report.error = str(exc)
            return f"twin: {exc}"
        finally:
            if built:
                t = time.monotonic()
                down = asyncio.ensure_future(twin_down(ctx.settings, name))
                try:
                    await asyncio.shield(down)
                finally:
                    report.phases.append(Phase(name="teardown", seconds=time.monotonic() - t, ok=down.done()))
            ctx.cleanup()

    @staticmethod
    async def _not_built(
        ctx: StageContext, model: InfraModel, built: list[str], report: TwinReport, g: gate.Gate
    ) -> str | None:
        """A changed switch of the slice the twin did not build cannot be proven: the failure when
        the twin is required; else it is recorded unproven (the gate sorts non-FRR switches out
        first; this catches whatever else the lab plan left out)."""
        missing = [n for n in g.changed.switches if n in model.devices and n not in built]
        for n in missing:
            g.changed.switches.remove(n)
            g.changed.unbuildable[n] = gate.buildable(model, n) or "not built by the twin (the lab plan left it out)"
        if not missing:
            return None
        report.unproven = g.changed.unproven()
        failure = g.cannot_build()
        if failure is not None:
            report.error = failure
            return failure
        for n in missing:
            await ctx.log.warning(f"NOT proven by the twin: switch {n}: {g.changed.unbuildable[n]}")
        return None

    @staticmethod
    async def _hosts_not_built(ctx: StageContext, built: list[str], report: TwinReport, g: gate.Gate) -> None:
        """A changed host the twin did not build is recorded unproven (a required twin raises the
        approval for it: :meth:`gate.Gate.approval`)."""
        missing = [n for n in g.changed.hosts if n not in built]
        if not missing:
            return
        g.changed.not_built(missing, "not built by the twin (the lab plan left it out)")
        report.unproven = g.changed.unproven()
        for n in missing:
            await ctx.log.warning(f"NOT proven by the twin: host {n}: {g.changed.hosts_unbuildable[n]}")

    async def prove(
        self, ctx: StageContext, model: InfraModel, plan: Plan, report: TwinReport, name: str
    ) -> str | None:
        """On the built twin ``name`` holding ``model``: start it from production's state, deploy the
        plan's artifacts, verify; the failure, or None (also used by ``lintas twin up --ref``,
        :mod:`workers.twin.explore`)."""
        d = ctx.settings.deploy
        facts = twin_facts(name)
        fleet = await asyncio.to_thread(TwinFleet, model, ctx.settings, facts)
        fleets = Fleets(fleet, TwinHostFleet(model, ctx.settings, facts, sorted(facts.hosts)))
        try:
            t = time.monotonic()
            base, failed = await self._start(ctx, model, fleets, report)
            report.phases.append(
                Phase(name="start", seconds=time.monotonic() - t, ok=failed is None, detail=failed or "")
            )
            if failed is not None:
                return f"twin: cannot bring the twin to production's state: {failed}"
            t = time.monotonic()
            record = self._record(
                ctx,
                model,
                {n: tp.artifacts for n, tp in plan.targets.items() if tp.status != "removed"},
                base,
                hosts=set(fleets.hosts.conns),
            )
            report.deployed = sorted(record.targets)
            rollout = TwinRollout(ctx, model, record, fleets)
            outcome = await rollout.run()
            report.committed, report.unchanged = record.with_status("committed"), record.with_status("unchanged")
            detail = outcome.failure.message if outcome.failure is not None else ""
            report.phases.append(
                Phase(name="deploy", seconds=time.monotonic() - t, ok=outcome.outcome == "succeeded", detail=detail)
            )
            if outcome.failure is not None:
                report.checks = [
                    {
                        "device": n,
                        "check": "deploy",
                        "subject": "apply" if record.targets[n].kind == "host" else "commit and health gate",
                        "passed": False,
                        "expected": "applied"
                        if record.targets[n].kind == "host"
                        else "committed, sessions Established",
                        "observed": record.targets[n].error,
                    }
                    for n in record.with_status("failed")
                ]
                return f"twin: deploy failed in the twin: {detail}"
            t = time.monotonic()
            # verify's checks: the fabric's, and every host's (workers.hosts.ops.checks) the run deployed to
            bundles = {n: rollout.bundles[n] for n in sorted(record.targets) if record.targets[n].kind == "host"}
            fabric, on_hosts = await asyncio.gather(
                verify_fabric(
                    fleet,
                    model,
                    sorted(model.devices),
                    log=ctx.log,
                    settling=Settling.of("twin verify", d),
                    changed=set(report.committed) - set(bundles) or None,
                ),
                verify_hosts(
                    fleets.hosts,
                    bundles,
                    log=ctx.log,
                    settling=Settling.of("twin verify", d),
                    deletions_allowed=record.allow_deletions,
                    probes={n: uplink_probes(model, n, set(bundles)) for n in bundles},  # peers built here
                ),
            )
            checks = fabric.checks + on_hosts.checks
            both = fabric.verdict.passed and on_hosts.verdict.passed
            report.verdict = fabric.summary() | {"hosts": on_hosts.summary(), "passed": both}
            report.checks = [c.model_dump(mode="json") for c in checks]
            report.totals = C.summary(checks)
            bad = C.failing(checks)
            report.passed = not bad and both
            report.phases.append(Phase(name="verify", seconds=time.monotonic() - t, ok=report.passed))
            if bad:
                for line in check_lines(checks, limit=40):
                    await ctx.log.error(f"twin check failed: {line}")
                ended = fabric.verdict if C.failing(fabric.checks) or not fabric.verdict.passed else on_hosts.verdict
                return f"twin: {len(bad)} check(s) failed ({ended.ended_by}: {ended.reason}): " + "; ".join(
                    check_lines(checks, limit=8)
                )
            for verdict in (fabric.verdict, on_hosts.verdict):
                if not verdict.passed:
                    return f"twin: {verdict.ended_by}: {verdict.reason}"
            await ctx.log.info(f"twin passed: {C.summary(checks)['passed']} check(s)")
            return None
        finally:
            await asyncio.to_thread(fleet.close)

    async def _start(
        self, ctx: StageContext, model: InfraModel, fleets: Fleets, report: TwinReport
    ) -> tuple[dict[str, dict[str, str]], str | None]:
        """Each switch and host to its last deployed artifacts (switches committed, then confirmed;
        hosts applied): ``(those artifacts, None)``, or the failure."""
        deployed = await TargetStore(ctx.topology.targets).all()
        hosts = sorted(fleets.hosts.conns)
        targets = sorted(model.devices) + hosts
        base = {n: deployed[n] for n in targets if n in deployed and deployed[n].artifacts}
        report.started_from = {n: (f"deployed {base[n].commit}" if n in base else "day0") for n in targets}
        report.start = "last_deployed" if base else "day0"
        arts = {n: s.artifacts for n, s in base.items()}
        if not base:
            return arts, None
        await ctx.log.info(f"twin: starting from production's last deployed artifacts of {len(base)} target(s)")
        record = self._record(ctx, model, arts, {}, hosts=set(hosts))
        rollout = TwinRollout(ctx, model, record, fleets)
        failed = await rollout.commit_at_once()
        if failed:
            return arts, "; ".join(f"{n}: {record.targets[n].error}" for n in failed)
        committed = [n for n in record.with_status("committed") if n in model.devices]  # confirmed without a read
        done = await fleets.switches.run(
            committed, ops.confirm, run_id=ctx.job.run_id, checkpoints={}, known_ours=frozenset(committed)
        )
        bad = {n: o.error for n, o in done.items() if not o.ok}
        if bad:
            return arts, "; ".join(f"{n}: {e}" for n, e in sorted(bad.items()))
        # then one wait for the sessions: the health gate's rule on that one wave (the model's sessions
        # between started switches Established with IPv4 prefixes), not verify's checks: those are
        # the run's model, which production's last deployed state need not match (the run's verify
        # waits for the whole control plane to be stable after the change)
        failed = await rollout.health_gate(rollout.waves[0]) if rollout.waves[0].devices else []
        return arts, "; ".join(f"{n}: {record.targets[n].error}" for n in failed) or None

    @staticmethod
    def _record(
        ctx: StageContext,
        model: InfraModel,
        artifacts: dict[str, dict[str, str]],
        previous: dict[str, dict[str, str]],
        *,
        hosts: set[str],
    ) -> DeployRecord:
        """A rollout record of ``artifacts`` per switch and per host of ``hosts`` (those the twin built);
        ``previous``: what the twin's target runs already."""
        d, job = ctx.settings.deploy, ctx.job
        record = DeployRecord(
            run_id=job.run_id, repo=job.repo, sha=job.sha, revert_in_s=max(d.revert_in_s, int(d.verify_timeout_s) + 20)
        )
        for n, arts in sorted(artifacts.items()):
            if n in model.devices:
                record.targets[n] = TargetResult(
                    target=n, kind="device", artifacts=arts, role=model.devices[n].role, previous=previous.get(n)
                )
            elif n in hosts:
                record.targets[n] = TargetResult(
                    target=n, kind="host", artifacts=arts, role="host", previous=previous.get(n)
                )
        return record

    @staticmethod
    def result(report: TwinReport, failure: str | None) -> StageResult:
        """The stage's result: its summary (:class:`TwinSummary`) from the report."""
        scope = report.out_of_scope[:MAX_OUT_OF_SCOPE_ON_RUN]
        if len(report.out_of_scope) > MAX_OUT_OF_SCOPE_ON_RUN:
            scope.append(f"... and {len(report.out_of_scope) - MAX_OUT_OF_SCOPE_ON_RUN} more (see the report)")
        summary = TwinSummary(
            report=S.twin_report_doc(report.run_id),
            passed=report.passed and failure is None,
            switches=report.switches,
            hosts=report.hosts,
            slice=report.slice,
            whole=report.whole,
            start=report.start,
            committed=report.committed,
            timings=report.timings(),
            totals=report.totals,
            checks=[c for c in report.checks if c.get("passed") is False][:MAX_CHECKS_ON_RUN],
            out_of_scope=scope,
        ).dump()
        if failure is None:
            return StageResult.ok(summary)
        return StageResult.failed(failure, summary=summary)
