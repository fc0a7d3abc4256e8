"""The ``policy`` stage: Rego policies over the validated model, the change and its metadata.

1. check out the pushed sha; load the model (a bad model fails here, with every problem);
2. the change: the render stage's plan summary when the pipeline has one (``needs: [render]``),
   else a full render of ``before`` and of the pushed sha (never a guess from the model
   diff); the objects that changed, from the model diff, attributed to the plan's targets;
3. metadata from the commit (author, message, time, ``Lintas-Labels:`` trailer);
4. modules: the built-in library plus the repo's ``policies/**/*.rego`` (checked first);
5. evaluate with regorus in a sandboxed child, or with OPA when ``LINTAS_OPA_URL`` is set;
6. ``deny`` fails the stage; ``require_approval`` becomes approval reasons (the run waits
   before an ``approval: on_request`` stage); ``require_twin`` is carried in the summary for
   the twin stage (which then may not be skipped) and the deploy stage (which then commits
   only a proven change), with ``twin_follows``; a warning on the run when no twin stage
   follows (the change goes to production unproven) or when a deploy after it does not wait
   for the twin (that deploy refuses); ``warn`` annotates the run.

Fail closed: an unreadable policy, an evaluation error, a timeout or an unreachable OPA
fails the stage with the reason. Nothing defaults to allow.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.contracts import RenderSummary, upstream
from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import InputError
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext, StageResult
from lintas.workers.model import InfraModel, load_model
from lintas.workers.model.cache import ModelCache
from lintas.workers.policy.change import change_of, model_at_revision, rendered_change
from lintas.workers.policy.config import PolicySettings
from lintas.workers.policy.engine import Decision, Modules
from lintas.workers.policy.errors import PolicyError
from lintas.workers.policy.input import build_input, commit_meta, repo_templates
from lintas.workers.policy.library import builtin_modules, repo_modules
from lintas.workers.policy.rego_source import inspect
from lintas.workers.policy.report import diagnostic, reasons, report_doc_name, summary
from lintas.workers.policy.testing import run_policy_tests
from lintas.workers.render.plan import Plan


@dataclass
class Prepared:
    model: InfraModel
    modules: dict[str, str]
    repo_modules: int
    input: dict[str, Any]
    input_json: bytes


class PolicyStage:
    kind: ClassVar[str] = "policy"

    def __init__(self, settings: Settings, config: PolicySettings | None = None) -> None:
        self._settings = settings
        self.config = config or PolicySettings()
        self._builtins = builtin_modules(self.config.policy_builtin_dir, tests=False)
        self._data = self.config.data()
        self._cache = ModelCache()
        self._cache_lock = threading.Lock()  # a ModelCache is not thread-safe

    # ------------------------------------------------------------------ preparation (blocking)
    def prepare(
        self,
        root: Path,
        *,
        sha: str | None,
        before: str | None,
        render_summary: dict[str, Any] | None,
        pushed: bool,
        repo: str = "",
        ref: str = "",
        changed_paths: list[str] | None = None,
    ) -> Prepared:
        """Blocking. ``pushed``: a job for a push, whose baseline is ``before`` or, without
        one, nothing (everything is new); else a local check, whose baseline is ``before``
        when given and otherwise unknown."""
        has_before = before is not None and set(before) != {"0"}
        with self._cache_lock:
            model = load_model(root, cache=self._cache)
            old = model_at_revision(root, before, self._cache) if has_before and before else None
        if render_summary is None and has_before and before:
            render_summary = rendered_change(root, before)  # no render stage: render both commits
        plan_summary, affected = change_of(
            model,
            old,
            render_summary,
            baseline_known=pushed or has_before,
            against=f"commit {before}" if has_before else "nothing (first push)",
        )
        meta = commit_meta(root, sha, repo=repo, ref=ref, before=before, changed_paths=changed_paths)
        local = repo_modules(root)
        doc = build_input(
            model,
            plan_summary=plan_summary,
            meta=meta,
            affected=affected,
            templates=repo_templates(root),
            previous=old,
        )
        return Prepared(model, {**self._builtins, **local}, len(local), doc, json.dumps(doc, sort_keys=True).encode())

    def decide(self, prepared: Prepared) -> Decision:
        return self.config.engine().evaluate(prepared.modules, prepared.input, self._data)

    def result(
        self,
        prepared: Prepared,
        decision: Decision,
        *,
        report: str | None,
        duration_ms: float,
        twin_follows: bool | None = None,
        unguarded: list[str] | None = None,
    ) -> StageResult:
        """``twin_follows``: whether a twin stage runs after this one (None: unknown, a local check);
        ``unguarded``: the deploy stages after this one that no twin stage after it precedes."""
        files = {str(i.package): i.file for i in (inspect(n, s) for n, s in prepared.modules.items())}
        s = summary(
            decision,
            backend=decision.backend,
            modules=len(prepared.modules),
            repo_modules=prepared.repo_modules,
            report=report,
            input_sha256=hashlib.sha256(prepared.input_json).hexdigest(),
            meta=prepared.input["meta"],
            duration_ms=duration_ms,
        )
        s["twin_follows"] = twin_follows
        unprovable = [
            f"{r}; {why}" for r in reasons(decision.require_twin) if (why := _twin_gap(twin_follows, unguarded))
        ]
        if decision.deny:
            diags = [diagnostic(v, prepared.model, files) for v in decision.deny]
            return StageResult.failed(f"{len(diags)} policy violation(s); first: {diags[0]}", diags, s)
        return StageResult.ok(
            s, approval_reasons=reasons(decision.require_approval), warnings=reasons(decision.warn) + unprovable
        )

    # ------------------------------------------------------------------ the stage
    async def run(self, ctx: StageContext) -> StageResult:
        job = ctx.job
        t0 = time.perf_counter()
        root = await asyncio.to_thread(ctx.checkout)
        store = NatsArtifactStore(ctx.topology.artifacts)
        try:
            render = await self._render_plan(store, upstream(job, RenderSummary))
        except PolicyError as exc:
            await ctx.log.error(f"failing closed: {exc.reason}")
            return StageResult.failed(
                f"policy input incomplete (fail closed): {exc.reason}",
                [Diagnostic(file="policies", message=exc.reason)],
            )
        try:
            prepared = await asyncio.to_thread(
                self.prepare,
                root,
                sha=job.sha,
                before=job.before,
                render_summary=render,
                pushed=True,
                repo=job.repo,
                ref=job.ref,
                changed_paths=job.changed_paths,
            )
        except InputError as exc:
            for d in exc.diagnostics[:50]:
                await ctx.log.error(str(d))
            return StageResult.failed(f"policy input invalid: {exc.summary}", exc.diagnostics)
        await ctx.log.info(
            f"evaluating {len(prepared.modules)} policy module(s) ({prepared.repo_modules} from the repo) with "
            f"{self.config.backend_name}; change: " + _change_line(prepared.input["change"])
        )
        try:
            decision = await asyncio.to_thread(self.decide, prepared)
        except InputError as exc:  # a syntax error: file and line
            for d in exc.diagnostics[:50]:
                await ctx.log.error(str(d))
            return StageResult.failed(f"policy error: {exc.summary}; first: {exc.diagnostics[0]}", exc.diagnostics)
        except PolicyError as exc:
            await ctx.log.error(f"policy evaluation failed, failing closed: {exc.reason}")
            return StageResult.failed(
                f"policy evaluation failed (fail closed): {exc.reason}",
                [Diagnostic(file="policies", message=exc.reason)],
            )
        name = report_doc_name(job.run_id)
        input_id = await store.put_blob(prepared.input_json)
        await store.put_doc(name, json.dumps(report_document(decision, prepared, input_id)).encode())
        for kind, log in (
            ("deny", ctx.log.error),
            ("require_approval", ctx.log.warning),
            ("require_twin", ctx.log.warning),
            ("warn", ctx.log.warning),
        ):
            for v in getattr(decision, kind)[:50]:
                await log(f"{kind}: {v}")
        result = self.result(
            prepared,
            decision,
            report=name,
            duration_ms=(time.perf_counter() - t0) * 1000,
            twin_follows=None if job.downstream_kinds is None else "twin" in job.downstream_kinds,
            unguarded=job.deploys_without_twin,
        )
        await ctx.log.info(
            f"policy: {len(decision.deny)} deny, {len(decision.require_approval)} approval, "
            f"{len(decision.require_twin)} twin, {len(decision.warn)} warn"
        )
        return result

    @staticmethod
    async def _render_plan(store: NatsArtifactStore, render: RenderSummary | None) -> dict[str, Any] | None:
        """The render stage's change, read from its stored plan document: the same plan deploy reads,
        whatever the size of the render stage's inline result (large lists may be left out of it)."""
        if render is None:
            return None
        name = render.plan
        if name is None:
            raise PolicyError("the render stage's result names no plan document")
        raw = await store.get_doc(name)
        if raw is None:
            raise PolicyError(f"the render stage's plan document {name} is missing")
        return Plan.model_validate_json(raw).summary()

    def run_local(self, root: Path, *, against: str | None = None, repo: str | None = None) -> StageResult:
        """`lintas policy check [PATH] [--against REF]` without NATS (no report document)."""
        t0 = time.perf_counter()
        try:
            prepared = self.prepare(root, sha=None, before=against, render_summary=None, pushed=False)
            decision = self.decide(prepared)
        except InputError as exc:
            return StageResult.failed(f"policy error: {exc.summary}", exc.diagnostics)
        except PolicyError as exc:
            return StageResult.failed(
                f"policy evaluation failed (fail closed): {exc.reason}",
                [Diagnostic(file="policies", message=exc.reason)],
            )
        return self.result(prepared, decision, report=None, duration_ms=(time.perf_counter() - t0) * 1000)

    def unit_tests(self, root: Path | None = None) -> dict[str, Any]:
        """`lintas policy test [PATH]`: every Rego unit test as JSON-able rows (see
        :meth:`workers.policy.testing.PolicyTestReport.as_json`), reached through the stage
        registry so that the CLI never imports ``workers``. Raises InputError (file, line) for
        a module that does not parse, PolicyError when the engine fails."""
        return run_policy_tests(root, config=self.config).as_json()


def report_document(decision: Decision, prepared: Prepared, input_id: str) -> dict[str, Any]:
    return {
        "kind": "lintas.policy.report",
        "version": 1,
        "backend": decision.backend,
        "decision": decision.as_json(),
        "input": input_id,
        "modules": {n: hashlib.sha256(s.encode()).hexdigest() for n, s in sorted(prepared.modules.items())},
    }


def _change_line(change: dict[str, Any]) -> str:
    if not change.get("known"):
        return "unknown"
    return ", ".join(f"{len(change[k])} {k}" for k in ("new", "changed", "removed")) + f" (against {change['against']})"


__all__ = ["Modules", "PolicyStage"]


def _twin_gap(twin_follows: bool | None, unguarded: list[str] | None) -> str:
    """What a policy's require_twin meets in this pipeline, when it is not a twin before every deploy:
    no twin stage after the policy (the change goes unproven: nothing to prove it on), or deploy
    stages that do not wait for it (they refuse to commit it unproven, workers/deploy/twin_guard.py)."""
    if twin_follows is False:
        return "but this pipeline has no twin stage after the policy stage: the change goes to production unproven"
    if unguarded:
        return (
            f"but deploy stage(s) {', '.join(unguarded)} do not wait for the twin stage: "
            "they refuse to deploy the change unproven"
        )
    return ""
