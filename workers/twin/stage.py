"""The ``twin`` stage (issue 18): the run's rendered artifacts deployed to, and verified on, a
throwaway twin of the model's switches, before production is touched.

1. read the render stage's plan (as deploy does: ``upstream(job, RenderSummary)``) and the model at the run's sha;
2. build a twin of the change's slice (below; :func:`workers.lab.twin.twin_up`, ``hold=True``: the twin
   lives only as long as this worker; a SIGKILLed worker's twin is swept by the next twin or ``lab down``);
3. bring it to production's state first: each switch's **last deployed artifacts** (the targets
   store), all committed at once (one wave, no health gate: the start state is not under test)
   and confirmed, then its BGP sessions are waited for once (the health gate's rule on that one
   wave); a switch never deployed stays at day 0;
4. deploy the run's artifacts to every switch of the slice through the deploy stage's own
   :class:`~workers.deploy.rollout.Rollout` (FRR driver, waves, commit-confirm with a revert
   timer, the health gate), reached through the twin's management namespace with the twin's
   registered login (:mod:`workers.twin.reach`); no lease is taken and the rollout's record is kept
   under ``twin/<run>/``, never the deploy stage's;
5. verify with verify's checks and its stability rule (:func:`workers.deploy.fabric_verify.verify_fabric`);
6. store ``twin/<run>.json`` (built, timings, every check with expected vs observed, pass/fail)
   and **always** tear the twin down (success, failure, timeout, cancellation).

Before 2., :mod:`workers.twin.gate` decides whether to build at all: a plan that changes nothing
deployable succeeds at once (nothing to prove); a machine that cannot build a twin, or a changed
switch no twin can build (its platform), fails the stage when the twin is required (the
pipeline's ``twin: {required: true}``, a policy's ``require_twin``) and otherwise leaves the
change *unproven*. Changed hosts are never proven (not built in twins yet): a required twin
raises an approval reason naming them. After 2., a changed switch the twin did not build is
treated the same way (:meth:`TwinStage._not_built`).

A failed twin fails the stage naming the failing checks. Production is never read nor written:
no production credential, lease or commit. Hosts are not built in twins yet (the report's and the
summary's ``unproven``, and ``proven: false``).

The twin holds the change's **slice** (:mod:`workers.twin.slice`), not the whole fabric: the changed
switches, every switch they peer with, and an unchanged leaf carrying each network a changed leaf
carries (a change of every switch builds them all). Only the slice is started and deployed to;
verify checks the model restricted to the built switches (:func:`~workers.twin.slice.restrict`),
and what it cannot check there (sessions, remote VTEPs, routes and pings of switches not built) is
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
from lintas.workers.deploy.common import check_lines, plan_and_model
from lintas.workers.deploy.connect import ConnectError
from lintas.workers.deploy.fabric_verify import Settling, verify_fabric
from lintas.workers.deploy.hostfleet import HostFleet
from lintas.workers.deploy.record import DeployRecord, TargetResult
from lintas.workers.deploy.rollout import Fleets, Rollout
from lintas.workers.deploy.waves import Strategy, Wave, plan_waves
from lintas.workers.lab.cmd import LabError, find_tools
from lintas.workers.lab.twin import twin_down, twin_facts, twin_up
from lintas.workers.model.model import InfraModel
from lintas.workers.render.plan import Plan
from lintas.workers.twin import gate
from lintas.workers.twin.reach import TwinFleet
from lintas.workers.twin.slice import Slice, out_of_scope, restrict, slice_of

MAX_CHECKS_ON_RUN = 40
OUT_OF_SCOPE = ["hosts (libvirt, OVS): not built in twins yet"]
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
        roles = {n: model.devices[n].role for n in record.targets}
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

    async def commit_at_once(self) -> list[str]:
        """The twin's start: every switch of the record committed in one wave (``all_at_once``), no
        health gate (the start state is not under test: its sessions are waited for once after). Returns
        the switches that failed."""
        wave = Wave(index=0, kind="all", devices=sorted(self.record.targets))
        self.waves, self.record.waves = [wave], [wave.devices]
        for n in wave.devices:
            self.record.targets[n].wave = 0
        await self._load_bundles()
        return await self.switch_wave(wave)


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
        cut = slice_of(model, plan)
        report = TwinReport(
            run_id=job.run_id,
            sha=job.sha,
            switches=sorted(cut.switches),
            slice=cut.switches,
            whole=cut.whole,
            out_of_scope=[*OUT_OF_SCOPE, *cut.notes],
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
            record = await twin_up(ctx.settings, repo, name=name, only=None if cut.whole else cut.names, hold=True)
            built = True
            report.twin, report.prefix = record.name, record.prefix
            report.phases.append(Phase(name="build", seconds=time.monotonic() - t, ok=True))
            failed = await self._not_built(ctx, model, record.switches, report, g)
            if failed is not None:
                return failed
            # the model the twin holds: what it starts, deploys and verifies (its switches, the links,
            # networks and sessions among them); the rest of verify's checks are out of its scope
            held = restrict(model, record.switches)
            report.switches = sorted(held.devices)
            report.out_of_scope += out_of_scope(model, held)
            await ctx.log.info(
                f"twin {record.prefix}: {len(record.switches)} of {len(model.devices)} switch(es) up"
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

    async def prove(
        self, ctx: StageContext, model: InfraModel, plan: Plan, report: TwinReport, name: str
    ) -> str | None:
        """On the built twin ``name`` holding ``model``: start it from production's state, deploy the
        plan's artifacts, verify; the failure, or None (also used by ``lintas twin up --ref``,
        :mod:`workers.twin.explore`)."""
        d = ctx.settings.deploy
        facts = twin_facts(name)
        fleet = await asyncio.to_thread(TwinFleet, model, ctx.settings, facts)
        fleets = Fleets(fleet, HostFleet(model, ctx.settings, []))
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
                ctx, model, {n: tp.artifacts for n, tp in plan.targets.items() if tp.status != "removed"}, base
            )
            report.deployed = sorted(record.targets)
            outcome = await TwinRollout(ctx, model, record, fleets).run()
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
                        "subject": "commit and health gate",
                        "passed": False,
                        "expected": "committed, sessions Established",
                        "observed": record.targets[n].error,
                    }
                    for n in record.with_status("failed")
                ]
                return f"twin: deploy failed in the twin: {detail}"
            t = time.monotonic()
            fabric = await verify_fabric(
                fleet,
                model,
                sorted(model.devices),
                log=ctx.log,
                settling=Settling.of("twin verify", d),
                changed=set(report.committed) or None,
            )
            checks = fabric.checks
            report.verdict = fabric.summary() | {"passed": fabric.verdict.passed}
            report.checks = [c.model_dump(mode="json") for c in checks]
            report.totals = C.summary(checks)
            bad = C.failing(checks)
            report.passed = not bad and fabric.verdict.passed
            report.phases.append(Phase(name="verify", seconds=time.monotonic() - t, ok=report.passed))
            if bad:
                for line in check_lines(checks, limit=40):
                    await ctx.log.error(f"twin check failed: {line}")
                return (
                    f"twin: {len(bad)} check(s) failed ({fabric.verdict.ended_by}: {fabric.verdict.reason}): "
                    + "; ".join(check_lines(checks, limit=8))
                )
            if not fabric.verdict.passed:
                return f"twin: {fabric.verdict.ended_by}: {fabric.verdict.reason}"
            await ctx.log.info(f"twin passed: {C.summary(checks)['passed']} check(s)")
            return None
        finally:
            await asyncio.to_thread(fleet.close)

    async def _start(
        self, ctx: StageContext, model: InfraModel, fleets: Fleets, report: TwinReport
    ) -> tuple[dict[str, dict[str, str]], str | None]:
        """Each switch to its last deployed artifacts (committed, then confirmed): ``(those artifacts,
        None)``, or the failure."""
        deployed = await TargetStore(ctx.topology.targets).all()
        base = {n: deployed[n] for n in sorted(model.devices) if n in deployed and deployed[n].artifacts}
        report.started_from = {
            n: (f"deployed {base[n].commit}" if n in base else "day0") for n in sorted(model.devices)
        }
        report.start = "last_deployed" if base else "day0"
        arts = {n: s.artifacts for n, s in base.items()}
        if not base:
            return arts, None
        await ctx.log.info(f"twin: starting from production's last deployed artifacts of {len(base)} switch(es)")
        record = self._record(ctx, model, arts, {})
        rollout = TwinRollout(ctx, model, record, fleets)
        failed = await rollout.commit_at_once()
        if failed:
            return arts, "; ".join(f"{n}: {record.targets[n].error}" for n in failed)
        committed = record.with_status("committed")  # just committed: this run's, confirmed without a read
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
        failed = await rollout.health_gate(rollout.waves[0])
        return arts, "; ".join(f"{n}: {record.targets[n].error}" for n in failed) or None

    @staticmethod
    def _record(
        ctx: StageContext, model: InfraModel, artifacts: dict[str, dict[str, str]], previous: dict[str, dict[str, str]]
    ) -> DeployRecord:
        """A rollout record of ``artifacts`` per switch; ``previous``: what the twin's switch runs already."""
        d, job = ctx.settings.deploy, ctx.job
        record = DeployRecord(
            run_id=job.run_id, repo=job.repo, sha=job.sha, revert_in_s=max(d.revert_in_s, int(d.verify_timeout_s) + 20)
        )
        for n, arts in sorted(artifacts.items()):
            if n in model.devices:
                record.targets[n] = TargetResult(
                    target=n, kind="device", artifacts=arts, role=model.devices[n].role, previous=previous.get(n)
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
