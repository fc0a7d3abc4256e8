"""The ``twin`` stage (issue 18): the run's rendered artifacts deployed to, and verified on, a
throwaway twin of the model's switches, before production is touched.

1. read the render stage's plan (as deploy does: ``upstream(job, RenderSummary)``) and the model at the run's sha;
2. build a twin of the model's switches (:func:`workers.lab.twin.twin_up`, ``hold=True``: the twin
   lives only as long as this worker; a SIGKILLed worker's twin is swept by the next twin or ``lab down``);
3. bring it to production's state first: each switch's **last deployed artifacts** (the targets
   store), committed and confirmed; a switch never deployed stays at day 0;
4. deploy the run's artifacts to every switch of the plan through the deploy stage's own
   :class:`~workers.deploy.rollout.Rollout` (FRR driver, waves, commit-confirm with a revert
   timer, the health gate), reached through the twin's management namespace with the twin's
   registered login (:mod:`workers.twin.reach`); no lease is taken and the rollout's record is kept
   under ``twin/<run>/``, never the deploy stage's;
5. verify with verify's checks and its stability rule (:func:`workers.deploy.fabric_verify.verify_fabric`);
6. store ``twin/<run>.json`` (built, timings, every check with expected vs observed, pass/fail)
   and **always** tear the twin down (success, failure, timeout, cancellation).

A failed twin fails the stage naming the failing checks. Production is never read nor written:
no production credential, lease or commit. Hosts are not built in twins yet (out of scope: said
in the report); the twin holds the whole switch topology (no slicing yet).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, ValidationError

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.contracts import TwinSummary
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
from lintas.workers.deploy.waves import Strategy, plan_waves
from lintas.workers.lab.cmd import LabError
from lintas.workers.lab.twin import twin_down, twin_facts, twin_up
from lintas.workers.model.model import InfraModel
from lintas.workers.render.plan import Plan
from lintas.workers.twin.reach import TwinFleet

MAX_CHECKS_ON_RUN = 40
OUT_OF_SCOPE = ["hosts (libvirt, OVS): not built in twins yet", "slicing: the twin holds every switch of the model"]


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


class Phase(BaseModel):
    name: Literal["build", "start", "deploy", "verify", "teardown"]
    seconds: float
    ok: bool
    detail: str = ""


class TwinReport(BaseModel):
    """``twin/<run>.json``: what was built, how long each part took, every check, the verdict."""

    run_id: str
    sha: str
    twin: str = ""
    prefix: str = ""
    switches: list[str] = Field(default_factory=list)
    start: Literal["day0", "last_deployed"] = "day0"
    started_from: dict[str, str] = Field(default_factory=dict)  # switch -> "day0" | "deployed <commit>"
    deployed: list[str] = Field(default_factory=list)  # the plan's switches the run's artifacts went to
    committed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    phases: list[Phase] = Field(default_factory=list)
    verdict: dict[str, Any] = Field(default_factory=dict)
    totals: dict[str, int] = Field(default_factory=dict)
    checks: list[dict[str, Any]] = Field(default_factory=list)
    out_of_scope: list[str] = Field(default_factory=lambda: list(OUT_OF_SCOPE))
    passed: bool = False
    error: str | None = None

    def timings(self) -> dict[str, float]:
        out = {f"{p.name}_s": round(p.seconds, 3) for p in self.phases}
        out["total_s"] = round(sum(p.seconds for p in self.phases), 3)
        return out


def twin_name(run_id: str) -> str:
    return "run-" + hashlib.sha256(run_id.encode()).hexdigest()[:12]


class TwinStage:
    kind: ClassVar[str] = "twin"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

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
        report = TwinReport(run_id=job.run_id, sha=job.sha, switches=sorted(model.devices))
        try:
            failure = await self._in_twin(ctx, model, plan, report)
        except BaseException as exc:  # a timeout or a cancellation: the report still says how far it got
            report.error = report.error or f"{type(exc).__name__}: {exc}"[:600]
            raise
        finally:
            await asyncio.shield(
                store.put_doc(S.twin_report_doc(job.run_id), report.model_dump_json(indent=1).encode())
            )
        return self._result(report, failure)

    async def _in_twin(self, ctx: StageContext, model: InfraModel, plan: Plan, report: TwinReport) -> str | None:
        """Build, start, deploy, verify: the failure, or None; the twin is torn down whatever happens
        (its time in the report)."""
        name = twin_name(ctx.job.run_id)
        built = False
        t = time.monotonic()
        try:
            repo = await asyncio.to_thread(ctx.checkout)
            record = await twin_up(ctx.settings, repo, name=name, hold=True)
            built = True
            report.twin, report.prefix = record.name, record.prefix
            report.phases.append(Phase(name="build", seconds=time.monotonic() - t, ok=True))
            await ctx.log.info(f"twin {record.prefix}: {len(record.switches)} switch(es) up")
            return await self._prove(ctx, model, plan, report, name)
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

    async def _prove(
        self, ctx: StageContext, model: InfraModel, plan: Plan, report: TwinReport, name: str
    ) -> str | None:
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
        outcome = await TwinRollout(ctx, model, record, fleets).run()
        if outcome.failure is not None:
            return arts, outcome.failure.message
        done = await fleets.switches.run(
            record.with_status("committed"), ops.confirm, run_id=ctx.job.run_id, checkpoints={}
        )
        bad = {n: o.error for n, o in done.items() if not o.ok}
        return arts, ("; ".join(f"{n}: {e}" for n, e in sorted(bad.items())) if bad else None)

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
    def _result(report: TwinReport, failure: str | None) -> StageResult:
        summary = TwinSummary(
            report=S.twin_report_doc(report.run_id),
            passed=report.passed and failure is None,
            switches=report.switches,
            start=report.start,
            committed=report.committed,
            timings=report.timings(),
            totals=report.totals,
            checks=[c for c in report.checks if c.get("passed") is False][:MAX_CHECKS_ON_RUN],
            out_of_scope=report.out_of_scope,
        ).dump()
        if failure is None:
            return StageResult.ok(summary)
        return StageResult.failed(failure, summary=summary)
