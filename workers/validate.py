"""The ``validate`` stage: check out exactly the pushed sha and check everything it can.

- ``.lintas/pipeline.yaml`` against the pipeline schema and the registered stage kinds;
- the infrastructure model (``fabric/``, ``hosts/``, ``inventory/``): schema and every
  semantic check, through :func:`workers.model.load_model`;
- every other YAML file in the repo, parsed safely (limits on size, aliases, depth);
and report every problem at once with file, line, column and field.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, ClassVar

from lintas.engine import registry
from lintas.engine.diagnostics import Collector, Diagnostic
from lintas.engine.errors import InputError
from lintas.engine.pipeline import load_pipeline
from lintas.engine.repofs import RepoFS
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext, StageResult
from lintas.workers.isolation import ChildSession
from lintas.workers.model import MODEL_FILES, InfraModel, load_model
from lintas.workers.model.cache import ModelCache
from lintas.workers.model.gcpause import gc_paused, settle

YAML_GLOBS = ("**/*.yaml", "**/*.yml")
MODEL_MARKER = "fabric/fabric.yaml"


def validate_tree(
    root: Path, pipeline_file: str, cache: ModelCache | None = None, *, max_timeout_s: float | None = None
) -> tuple[list[Diagnostic], dict[str, Any], InfraModel | None]:
    """Blocking. Returns (diagnostics, summary, model or None)."""
    fs = RepoFS(root)
    sink = Collector()  # bounded: the first MAX_DIAGNOSTICS, the rest counted
    files = sorted({p for g in YAML_GLOBS for p in fs.glob(g)})
    model_files = set(MODEL_FILES)
    for rel in files:
        if rel in model_files:
            continue  # parsed (once) by the model loader below
        try:
            if rel == pipeline_file:
                kinds = registry.stage_kinds()
                load_pipeline(
                    fs.read_bytes(rel),
                    file=rel,
                    known_kinds=kinds,
                    max_timeout_s=max_timeout_s,
                    confirmed_by=registry.confirmations(kinds),
                )
            else:
                fs.load_yaml(rel)
        except InputError as exc:
            sink.extend(exc.diagnostics, exc.total)
    model: InfraModel | None = None
    if fs.exists(MODEL_MARKER):
        try:
            model = load_model(root, cache=cache)
        except InputError as exc:
            sink.extend(exc.diagnostics, exc.total)
    diags = sink.result()
    summary: dict[str, Any] = {"files_checked": len(files), "errors": sink.total}
    if model is not None:
        summary.update(
            devices=len(model.devices),
            hosts=len(model.hosts),
            instances=len(model.instances),
            networks=len(model.networks),
        )
    return diags, summary, model


def result_of(diags: list[Diagnostic], summary: dict[str, Any]) -> StageResult:
    if diags:
        total = summary.get("errors", len(diags))
        return StageResult.failed(f"{total} problem(s) in the repo; first: {diags[0]}", diags, summary)
    return StageResult.ok(summary)


class ChildValidator:
    """The validation that runs in the isolated child (workers/isolation.py), with its own model
    cache: only files whose content changed since the child's last job are parsed again."""

    def __init__(self) -> None:
        self.cache = ModelCache()

    def __call__(self, root: str, pipeline_file: str, max_timeout_s: float) -> tuple[list[Diagnostic], dict[str, Any]]:
        with gc_paused():
            try:
                diags, summary, _model = validate_tree(
                    Path(root), pipeline_file, self.cache, max_timeout_s=max_timeout_s
                )
            finally:
                settle()
        return diags, summary


class ValidateStage:
    kind: ClassVar[str] = "validate"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cache = ModelCache()  # re-parses only files whose content changed since the last job
        self._cache_lock = threading.Lock()  # a ModelCache is not thread-safe; jobs run in threads
        # the worker's jobs validate in a child process: a hostile repo's YAML never grows the
        # process that runs the engine, the other workers and the API (`lintas up`)
        self._child = ChildSession(ChildValidator, memory_mb=settings.evaluation_memory_mb, what="validation")

    async def run(self, ctx: StageContext) -> StageResult:
        await ctx.log.info(f"checking out {ctx.job.sha[:12]}")
        root = await asyncio.to_thread(ctx.checkout)
        diags, summary = await asyncio.to_thread(
            self._child.call,
            str(root),
            self._settings.pipeline_file,
            self._settings.max_stage_timeout_s,
            timeout_s=ctx.job.timeout_s,
        )
        for d in diags[:50]:
            await ctx.log.error(str(d))
        if not diags:
            what = ", ".join(f"{summary[k]} {k}" for k in ("devices", "hosts", "instances") if k in summary)
            await ctx.log.info(f"{summary['files_checked']} file(s) valid" + (f"; model: {what}" if what else ""))
        return result_of(diags, summary)

    def _validate(self, root: Path) -> tuple[list[Diagnostic], dict[str, Any], InfraModel | None]:
        with self._cache_lock, gc_paused():
            try:
                return validate_tree(
                    root, self._settings.pipeline_file, self._cache, max_timeout_s=self._settings.max_stage_timeout_s
                )
            finally:
                settle()  # the cached model stays out of later collections

    def run_local(self, root: Path, *, against: str | None = None, repo: str | None = None) -> StageResult:
        """`lintas validate PATH`: everything the validate stage checks, and the templates
        rendered for every target, so "valid" means the pipeline's render will not reject it."""
        diags, summary, model = self._validate(root)
        if not diags and model is not None:
            diags = render_check(root, model, summary)
        return result_of(diags, summary)


def render_check(root: Path, model: InfraModel, summary: dict[str, Any]) -> list[Diagnostic]:
    """Render every target's artifacts (discarded): template errors as diagnostics, and
    ``summary["templates"]`` saying what was rendered."""
    from lintas.workers.render.env import Renderer
    from lintas.workers.render.targets import render_targets

    renderer = Renderer(root)
    try:
        texts = render_targets(model, model.targets, renderer)
    except InputError as exc:
        summary["errors"] = exc.total
        summary["templates"] = "not rendered: template errors"
        return exc.diagnostics
    finally:
        close = getattr(renderer, "close", None)  # the sandboxed renderer holds a child process
        if close is not None:
            close()
    summary["templates"] = f"rendered for {len(texts)} target(s), {sum(len(a) for a in texts.values())} artifact(s)"
    return []
