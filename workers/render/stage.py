"""The ``render`` stage: the validated model becomes per-target artifacts and a plan.

1. check out the pushed sha; load and validate the model (all errors at once);
2. pick targets: every target's input projection is fingerprinted (model projection,
   templates, renderer code); a target renders again when its fingerprint differs from the
   previous commit's render index, or when that index is unknown. The rest is reused,
   byte-identical to a full render by construction;
3. render in the template sandbox (a child process with limits); store artifacts by
   content hash; store the render index with the fingerprints;
4. plan: per-target unified diff against what is deployed (TargetStore), stored as a
   document and summarised on the run: new / changed / unchanged / removed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import ClassVar

from lintas.engine import subjects as S
from lintas.engine.artifacts import ArtifactStore, NatsArtifactStore, content_id
from lintas.engine.contracts import RenderSummary
from lintas.engine.errors import InputError
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext, StageResult
from lintas.engine.targets import TargetStore
from lintas.workers.model import InfraModel, load_model
from lintas.workers.model.cache import ModelCache
from lintas.workers.model.gcpause import gc_paused, settle
from lintas.workers.render.env import Renderer, RenderLimits, Spares
from lintas.workers.render.local import plan_local
from lintas.workers.render.plan import Plan, RenderIndex, make_plan
from lintas.workers.render.targets import Selection, kind_of, render_inputs, select_targets


class RenderStage:
    kind: ClassVar[str] = "render"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cache = ModelCache()
        self._cache_lock = threading.Lock()  # a ModelCache is not thread-safe; jobs run in threads
        r = settings.render
        self._spares = Spares(RenderLimits(memory_mb=r.memory_mb, cpu_s=r.cpu_s))

    async def run(self, ctx: StageContext) -> StageResult:
        # The job allocates a whole model; collections in the middle of it would rescan the
        # large live heap. Keep the collector off for the job, then freeze the survivors.
        with gc_paused():
            try:
                return await self._run(ctx)
            finally:
                settle()

    async def _run(self, ctx: StageContext) -> StageResult:
        job = ctx.job
        t0 = time.perf_counter()
        root = await asyncio.to_thread(ctx.checkout)
        try:
            model = await asyncio.to_thread(self._load, root)
        except InputError as exc:
            return StageResult.failed(f"model invalid: {exc.summary}", exc.diagnostics)
        store = NatsArtifactStore(ctx.topology.artifacts)
        previous = await self._previous(store, job.repo, job.before)
        # the template child must be gone before the stage's own deadline
        r = self._settings.render
        limits = RenderLimits(
            memory_mb=r.memory_mb,
            cpu_s=r.cpu_s,
            max_output_chars=r.max_output_chars,
            timeout_s=max(1.0, job.timeout_s - 5.0),
        )
        try:
            with Renderer(root, limits=limits, spares=self._spares) as renderer:
                selection, rendered = await asyncio.to_thread(self._render, model, renderer, previous)
        except InputError as exc:
            return StageResult.failed(f"render failed: {exc.summary}", exc.diagnostics)
        finally:
            await asyncio.to_thread(self._spares.refill)  # the next job's sandbox starts now
        index = RenderIndex(
            repo=job.repo,
            sha=job.sha,
            targets={},
            kinds={t: kind_of(model, t) for t in model.targets},
            inputs=selection.fingerprints,
        )
        for target in sorted(model.targets):
            if target in rendered:
                index.targets[target] = {n: await store.put_blob(text.encode()) for n, text in rendered[target].items()}
            else:
                assert previous is not None
                index.targets[target] = previous.targets[target]
        await store.put_doc(S.render_index_doc(job.repo, job.sha), index.model_dump_json().encode())
        plan = await self._plan(ctx, store, index, rendered)
        await store.put_doc(S.plan_doc(job.run_id), plan.model_dump_json().encode())
        ms = (time.perf_counter() - t0) * 1000
        reused = len(model.targets) - len(rendered)
        source = f" from {str(job.before)[:8]}" if reused else ""
        await ctx.log.info(
            f"rendered {len(rendered)} target(s) whose inputs changed, reused {reused}{source} in {ms:.0f} ms"
        )
        for name in plan.by_status("new") + plan.by_status("changed"):
            tp = plan.targets[name]
            stats = ", ".join(f"{d.name} +{d.added} -{d.removed}" for d in tp.diffs)
            await ctx.log.info(f"{'+' if tp.status == 'new' else '~'} {name}: {stats}")
        return StageResult.ok(
            RenderSummary(
                rendered=len(rendered),
                reused=reused,
                targets=len(model.targets),
                plan=S.plan_doc(job.run_id),
                index=S.render_index_doc(job.repo, job.sha),
                against=plan.against,
                new=plan.by_status("new"),
                changed=plan.by_status("changed"),
                removed=plan.by_status("removed"),
                unchanged=len(plan.by_status("unchanged")),
            ).dump()
        )

    @staticmethod
    def _render(
        model: InfraModel, renderer: Renderer, previous: RenderIndex | None
    ) -> tuple[Selection, dict[str, dict[str, str]]]:
        selection = select_targets(
            model,
            renderer,
            previous=previous.inputs if previous else None,
            reusable=previous.targets if previous else (),
        )
        return selection, render_inputs({t: selection.inputs[t] for t in selection.render}, renderer)

    def _load(self, root: Path) -> InfraModel:
        with self._cache_lock:
            return load_model(root, cache=self._cache)

    async def _previous(self, store: ArtifactStore, repo: str, before: str | None) -> RenderIndex | None:
        if not before or set(before) == {"0"}:
            return None
        raw = await store.get_doc(S.render_index_doc(repo, before))
        return RenderIndex.model_validate_json(raw) if raw else None

    async def _plan(
        self, ctx: StageContext, store: ArtifactStore, index: RenderIndex, rendered: dict[str, dict[str, str]]
    ) -> Plan:
        deployed = await TargetStore(ctx.topology.targets).all()
        baseline = {t: s.artifacts for t, s in deployed.items() if s.repo == index.repo}
        against = "deployed" if baseline else "nothing deployed yet (first deploy)"
        drifted = {t: s.drift for t, s in deployed.items() if s.repo == index.repo and s.drift}
        return await make_plan(index, baseline, against=against, fetch=store.get_blob, texts=rendered, drifted=drifted)

    def run_local(self, root: Path, *, against: str | None = None, repo: str | None = None) -> StageResult:
        return plan_local(root, against=against, cache=self._cache, repo=repo)


__all__ = ["RenderStage", "content_id"]
