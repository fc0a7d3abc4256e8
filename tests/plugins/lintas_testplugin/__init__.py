"""Test-only stages. They do real work on the real runtime (sleep, raise, write markers),
so the engine's delivery guarantees can be observed from outside."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import ClassVar

from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import PermanentError, RetryableError
from lintas.engine.events import StageFailure
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext, StageResult


def _mark(ctx: StageContext) -> None:
    """Append one line per execution so tests can count executions from outside."""
    d = Path(ctx.settings.home) / "marks"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f"{ctx.job.run_id}.{ctx.job.stage}", "a") as fh:
        fh.write(f"{ctx.worker_id} pid={os.getpid()} delivery={ctx.delivery}\n")


class NoopStage:
    kind: ClassVar[str] = "t-noop"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self, ctx: StageContext) -> StageResult:
        if ctx.job.options.get("mark"):
            _mark(ctx)
        return StageResult.ok({"stage": ctx.job.stage})


class SleepStage:
    kind: ClassVar[str] = "t-sleep"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self, ctx: StageContext) -> StageResult:
        _mark(ctx)
        await ctx.log.info(f"sleeping {ctx.job.options.get('seconds', 1)}s")
        await asyncio.sleep(float(ctx.job.options.get("seconds", 1)))
        return StageResult.ok({"slept": ctx.job.options.get("seconds", 1)})


class BoomStage:
    kind: ClassVar[str] = "t-boom"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self, ctx: StageContext) -> StageResult:
        _mark(ctx)
        if ctx.job.options.get("permanent"):
            raise PermanentError("permanent boom")
        raise RuntimeError("boom: this stage always raises")


class FlakyStage:
    """Fails with a retryable error on the first N deliveries, then succeeds."""

    kind: ClassVar[str] = "t-flaky"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self, ctx: StageContext) -> StageResult:
        _mark(ctx)
        if ctx.delivery <= int(ctx.job.options.get("fail_times", 1)):
            raise RetryableError("device busy", delay_s=0.1)
        return StageResult.ok()


class AskApprovalStage:
    kind: ClassVar[str] = "t-approve"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self, ctx: StageContext) -> StageResult:
        return StageResult.ok(approval_reasons=[str(ctx.job.options.get("reason", "change touches both spines"))])


class BigResultStage:
    """A result as large as asked: ``with: {bytes: N, diagnostics: M, unserialisable: true}``; or,
    ``with: {leak: S}``, a failed result quoting ``S`` as a secret in every text it has."""

    kind: ClassVar[str] = "t-big"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self, ctx: StageContext) -> StageResult:
        _mark(ctx)
        opts = ctx.job.options
        if opts.get("leak"):  # a stage quoting a device that echoed a secret, everywhere a result has text
            said = str(opts["leak"])
            return StageResult(
                outcome="failed",
                summary={"device": {"said": [f"password={said}"]}, f"token: {said}": 1},
                failure=StageFailure(
                    message=f"the device answered password={said}",
                    diagnostics=[Diagnostic(file="leak.yaml", line=1, message=f"api_key={said}")],
                ),
                warnings=[f"secret: {said}"],
            )
        summary: dict[str, object] = {"small": "kept", "blob": "x" * int(opts.get("bytes", 0))}
        if opts.get("unserialisable"):
            summary["odd"] = object()
        n = int(opts.get("diagnostics", 0))
        if n:
            diags = [Diagnostic(file="big.yaml", line=i + 1, message="bad " + "y" * 100) for i in range(n)]
            return StageResult(
                outcome="failed", summary=summary, failure=StageFailure(message=f"{n} problems", diagnostics=diags)
            )
        return StageResult.ok(summary)
