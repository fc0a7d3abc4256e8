"""Resolve a run's pipeline: the repo's ``.lintas/pipeline.yaml`` at the pushed sha, or the default."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from lintas.engine import freshness
from lintas.engine.commands import PipelineRejected, PipelineResolved, RunRefused
from lintas.engine.errors import InputError
from lintas.engine.gitrepo import MirrorCache
from lintas.engine.pipeline import PipelineSpec, load_default_pipeline, load_pipeline
from lintas.engine.state import Run

MAX_PIPELINE_BYTES = 256 * 1024


class PipelineResolver:
    def __init__(
        self,
        mirror: MirrorCache,
        *,
        pipeline_file: str,
        known_kinds: Collection[str],
        default_pipeline: Path | None = None,
        max_timeout_s: float | None = None,
    ) -> None:
        self._mirror = mirror
        self._file = pipeline_file
        self._kinds = set(known_kinds)
        self._default_path = default_pipeline
        self._default: PipelineSpec | None = None
        self._max_timeout_s = max_timeout_s  # the operator's ceiling; the repo cannot raise it

    def default(self) -> PipelineSpec:
        if self._default is None:
            self._default = load_default_pipeline(self._default_path)
        return self._default

    def resolve(self, run: Run, deployed: Collection[str] = ()) -> PipelineResolved | PipelineRejected | RunRefused:
        """Blocking (git): call through ``asyncio.to_thread``. ``deployed``: the commits deployed
        from the run's repo; a push older than one of them, or no longer its branch's head, is
        refused (:mod:`engine.freshness`)."""
        try:
            fresh = freshness.check(self._mirror, run, deployed)
        except InputError as exc:
            return PipelineRejected(message=exc.summary, diagnostics=exc.diagnostics)
        if fresh.refused is not None:
            return RunRefused(reason=fresh.refused, state=fresh.state, head=fresh.head)
        try:
            blob = self._mirror.read_blob(run.url, run.sha, self._file, MAX_PIPELINE_BYTES)
            if blob is None:
                spec, source = self.default(), "built-in pipelines/default.yaml"
            else:
                spec = load_pipeline(blob, file=self._file, known_kinds=self._kinds, max_timeout_s=self._max_timeout_s)
                source = f"{self._file}@{run.sha[:8]}"
            changed = self._mirror.changed_paths(run.url, run.before, run.sha)
        except InputError as exc:
            return PipelineRejected(message=exc.summary, diagnostics=exc.diagnostics)
        return PipelineResolved(
            spec=spec, source=source, changed_paths=changed, notes=[fresh.note] if fresh.note else []
        )
