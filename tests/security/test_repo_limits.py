"""Hostile repos against the limits that need no server (issue 13, item 2): diagnostics are
capped at the source, and a repo cannot raise its own stage timeouts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lintas.engine.diagnostics import MAX_DIAGNOSTICS, Collector, Diagnostic
from lintas.engine.errors import InputError, PipelineError
from lintas.engine.infra_repo import TEMPLATE_DIR
from lintas.engine.pipeline import load_pipeline
from lintas.engine.resolver import PipelineResolver
from lintas.engine.settings import Settings
from tests.security.hostile import MILLION, million_invalid_items
from tests.security.measure import in_child

MAX_S, MAX_MB = 10.0, 256.0


def _validate_hostile(root: str) -> dict[str, Any]:
    """In the child: the validate stage on the repo, as a worker runs it."""
    from lintas.workers.validate import ValidateStage

    result = ValidateStage(Settings(home=Path(root) / "home")).run_local(Path(root) / "repo")
    assert result.failure is not None
    return {
        "outcome": result.outcome,
        "message": result.failure.message,
        "summary": result.summary,
        "diagnostics": [d.model_dump() for d in result.failure.diagnostics],
        "bytes": len(result.model_dump_json()),
    }


def test_a_million_invalid_items_give_capped_diagnostics_in_bounded_time_and_memory(tmp_path: Path) -> None:
    shutil.copytree(TEMPLATE_DIR, tmp_path / "repo")
    file = million_invalid_items(tmp_path / "repo")
    got = in_child(_validate_hostile, str(tmp_path))
    res = got.value
    assert res["outcome"] == "failed"
    diags = res["diagnostics"]
    assert len(diags) == MAX_DIAGNOSTICS + 1
    assert all(d["file"] == file and d["line"] == 1 for d in diags[:-1])
    assert diags[0]["path"] == "devices[0]" and "DeviceSpec" in diags[0]["message"]
    assert diags[-1]["file"] == "(more)" and f"({MILLION} in total)" not in diags[-1]["message"]
    total = res["summary"]["errors"]
    assert total >= MILLION and f"{total} in total" in diags[-1]["message"]
    assert res["message"].startswith(f"{total} problem(s) in the repo; first: {file}:1:")
    assert res["bytes"] < 512 * 1024  # the whole result fits in a NATS message with room to spare
    assert got.seconds <= MAX_S, f"{got.seconds:.1f}s"
    assert got.peak_rss_mb <= MAX_MB, f"{got.peak_rss_mb:.0f} MB"


def test_collector_keeps_the_first_and_counts_the_rest() -> None:
    sink = Collector(limit=3)
    sink.extend([Diagnostic(file="a", message=str(i)) for i in range(2)])
    sink.add(Diagnostic(file="b", message="x"))
    sink.add(Diagnostic(file="c", message="y"))
    sink.count(10)
    out = sink.result()
    from lintas.engine.diagnostics import capped

    assert capped(out) == out  # a capped list keeps its count when capped again
    assert InputError(out).total == 14 and InputError(out).diagnostics == out
    assert [d.file for d in out] == ["a", "a", "b", "(more)"]
    assert sink.total == 14 and out[-1].message == "... and 11 more problem(s) not shown (14 in total)"
    again = Collector(limit=5)
    again.extend(out, sink.total)  # a capped list re-collected keeps its total, not its marker
    assert again.total == 14 and [d.file for d in again.result()][-1] == "(more)"


def test_input_errors_are_capped_whatever_the_caller_passes() -> None:
    exc = InputError([Diagnostic(file="f", line=i, message="bad") for i in range(50_000)])
    assert len(exc.diagnostics) == MAX_DIAGNOSTICS + 1 and exc.total == 50_000
    assert exc.summary == "50000 problem(s)" and len(str(exc)) < 200_000


PIPE = (
    "version: 1\nname: p\nstages:\n  validate:\n    timeout: 30m\n  render:\n    needs: [validate]\n    timeout: 48h\n"
)


def test_a_repo_cannot_raise_its_stage_timeouts_beyond_the_operator_maximum() -> None:
    with pytest.raises(PipelineError) as err:
        load_pipeline(PIPE, file=".lintas/pipeline.yaml", max_timeout_s=3600)
    (d,) = err.value.diagnostics
    assert (d.file, d.line, d.path) == (".lintas/pipeline.yaml", 8, "stages.render.timeout")
    assert d.message == "timeout 172800s exceeds the operator's maximum of 3600s (LINTAS_MAX_STAGE_TIMEOUT_S)"
    assert load_pipeline(PIPE, file="p.yaml", max_timeout_s=172800).stages["render"].timeout_s == 172800


def test_the_resolver_enforces_the_setting(tmp_path: Path) -> None:
    from lintas.engine.gitrepo import MirrorCache
    from lintas.engine.state import Run

    class OneFile(MirrorCache):
        def read_blob(self, url: str, sha: str, path: str, max_bytes: int) -> bytes | None:
            return PIPE.encode()

        def changed_paths(self, url: str, before: str | None, sha: str) -> list[str] | None:
            return None

        def head(self, url: str, ref: str) -> str | None:
            return "a" * 40  # the run's commit is its branch's head

        def is_ancestor(self, url: str, ancestor: str, descendant: str) -> bool:
            return False

    settings = Settings(home=tmp_path, max_stage_timeout_s=7200)
    resolver = PipelineResolver(
        OneFile(tmp_path),
        pipeline_file=".lintas/pipeline.yaml",
        known_kinds={"validate", "render"},
        max_timeout_s=settings.max_stage_timeout_s,
    )
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    out = resolver.resolve(
        Run(
            run_id="r",
            event_id="e",
            repo="x",
            url="/nowhere",
            ref="refs/heads/main",
            sha="a" * 40,
            created_at=now,
            updated_at=now,
        )
    )
    assert type(out).__name__ == "PipelineRejected"
    assert "exceeds the operator's maximum of 7200s" in out.diagnostics[0].message  # type: ignore[union-attr]
