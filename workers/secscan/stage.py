"""The ``secscan`` stage: bandit and secret detection over the checkout of the pushed sha.

Options (``with:`` in the pipeline, see :class:`~workers.secscan.findings.SecscanOptions`)::

    secscan:
      needs: [validate]
      with: {severity: medium, confidence: medium, honor_nosec: false, unparsable: warn,
             allowlist: .lintas/secscan-allowlist.yaml, entropy: {base64: 4.5, hex: 3.5, min_length: 20}}

The SARIF 2.1.0 report is stored as the document ``secscan/<run>.sarif.json`` in the artifact
store; the run keeps a compact summary (counts and the top findings). No secret is ever
written to a log line, a diagnostic, the summary or the report: findings are built from
the rule, the file and the line only.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import ClassVar

from pydantic import ValidationError

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import InputError
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext, StageResult
from lintas.workers.isolation import ChildSession
from lintas.workers.secscan.findings import Finding, SecscanOptions
from lintas.workers.secscan.scan import ScanResult, scan_repo

MAX_DIAGNOSTICS = 100


def report_doc_name(run_id: str) -> str:
    """Artifact document name of a run's SARIF report."""
    return S.secscan_report_doc(run_id)


def parse_options(raw: dict[str, object], pipeline_file: str, stage: str) -> SecscanOptions:
    try:
        return SecscanOptions.model_validate(raw)
    except ValidationError as exc:
        diags = [
            Diagnostic(
                file=pipeline_file, path=".".join(["stages", stage, "with", *map(str, e["loc"])]), message=e["msg"]
            )
            for e in exc.errors(include_url=False)
        ]
        raise InputError(diags, "invalid secscan options") from None


def result_of(scan: ScanResult, report: str | None) -> StageResult:
    summary = scan.summary(report)
    blocking = scan.blocking
    if blocking:
        diags = [_diagnostic(f) for f in blocking[:MAX_DIAGNOSTICS]]
        return StageResult.failed(f"{len(blocking)} blocking security finding(s); first: {blocking[0]}", diags, summary)
    warnings = [f"secscan: {f}" for f in scan.findings if f.suppressed is None and f.severity != "low"][:20]
    return StageResult.ok(summary, warnings=warnings)


def _diagnostic(f: Finding) -> Diagnostic:
    return Diagnostic(file=f.file, line=f.line, column=f.column, message=f"[{f.tool} {f.rule}] {f.message}")


class ChildScanner:
    """The scan, in the isolated child (workers/isolation.py): bandit parses the repo's Python,
    the secret detectors read every file; neither runs in the worker's own process."""

    def __call__(self, root: str, opts: SecscanOptions) -> ScanResult | tuple[list[Diagnostic], str]:
        try:
            return scan_repo(Path(root), opts)
        except InputError as exc:
            return exc.diagnostics, exc.summary  # located diagnostics travel back as they are


class SecscanStage:
    kind: ClassVar[str] = "secscan"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._child = ChildSession(ChildScanner, memory_mb=settings.evaluation_memory_mb, what="secscan")

    async def run(self, ctx: StageContext) -> StageResult:
        job = ctx.job
        try:
            opts = parse_options(job.options, self._settings.pipeline_file, job.stage)
        except InputError as exc:
            return StageResult.failed(exc.summary, exc.diagnostics)
        root = await asyncio.to_thread(ctx.checkout)
        try:
            got = await asyncio.to_thread(self._child.call, str(root), opts, timeout_s=job.timeout_s)
            if isinstance(got, tuple):
                raise InputError(*got)
            scan: ScanResult = got
        except InputError as exc:
            await asyncio.to_thread(ctx.cleanup)
            for d in exc.diagnostics[:20]:
                await ctx.log.error(str(d))
            return StageResult.failed(f"secscan: {exc.summary}", exc.diagnostics)
        # a blocked file (a secret) is not kept a moment longer than the scan, even in a kept work tree
        await asyncio.to_thread(ctx.discard, sorted({f.file for f in scan.blocking}))
        name = report_doc_name(job.run_id)
        await NatsArtifactStore(ctx.topology.artifacts).put_doc(name, json.dumps(scan.sarif()).encode())
        for f in scan.findings:
            if f.suppressed is None and (f.blocking or f.severity != "low"):
                await (ctx.log.error if f.blocking else ctx.log.warning)(str(f))
        active = [f for f in scan.findings if f.suppressed is None]
        await ctx.log.info(
            f"secscan: {scan.files} file(s), {scan.python_files} Python; {len(active)} finding(s), "
            f"{len(scan.blocking)} blocking, {len(scan.findings) - len(active)} allowlisted "
            f"({scan.duration_ms:.0f} ms); report {name}"
        )
        return result_of(scan, name)

    def run_local(self, root: Path, *, against: str | None = None, repo: str | None = None) -> StageResult:
        """`lintas secscan [PATH]` on a working copy (default options; no report document)."""
        try:
            scan = scan_repo(root, SecscanOptions())
        except InputError as exc:
            return StageResult.failed(f"secscan: {exc.summary}", exc.diagnostics)
        return result_of(scan, None)
