"""The ``validate`` stage: check out exactly the pushed sha and check every file it can.

- ``.lintas/pipeline.yaml`` against the pipeline schema and the registered stage kinds;
- every YAML file in the repo, parsed safely (limits on size, aliases, depth);
and report every problem at once with file, line and field.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from engine import registry
from engine.diagnostics import Diagnostic
from engine.errors import InputError
from engine.pipeline import load_pipeline
from engine.repofs import RepoFS
from engine.settings import Settings
from engine.stage import StageContext, StageResult

YAML_GLOBS = ("**/*.yaml", "**/*.yml")


def validate_tree(root: Path, pipeline_file: str) -> tuple[list[Diagnostic], int]:
    """Blocking. Returns (diagnostics, files checked)."""
    fs = RepoFS(root)
    diags: list[Diagnostic] = []
    files = sorted({p for g in YAML_GLOBS for p in fs.glob(g)})
    for rel in files:
        try:
            if rel == pipeline_file:
                load_pipeline(fs.read_bytes(rel), file=rel, known_kinds=registry.stage_kinds())
            else:
                fs.load_yaml(rel)
        except InputError as exc:
            diags.extend(exc.diagnostics)
    return diags, len(files)


class ValidateStage:
    kind: ClassVar[str] = "validate"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def run(self, ctx: StageContext) -> StageResult:
        await ctx.log.info(f"checking out {ctx.job.sha[:12]}")
        root = await asyncio.to_thread(ctx.checkout)
        diags, count = await asyncio.to_thread(validate_tree, root, self._settings.pipeline_file)
        summary = {"files_checked": count, "errors": len(diags)}
        if diags:
            for d in diags[:50]:
                await ctx.log.error(str(d))
            return StageResult.failed(f"{len(diags)} problem(s) in the repo; first: {diags[0]}", diags, summary)
        await ctx.log.info(f"{count} file(s) valid")
        return StageResult.ok(summary)
