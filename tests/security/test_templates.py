"""Hostile templates (issue 13, item 1, the lead's render sandbox): each attack ends in a located
error (template + target) within 10 s and 256 MB of the process that rendered it, and the
process that asked for the render (a worker) survives.

Each attack runs in a fresh child process standing for the worker (capped at 2 GB of address
space, so that a renderer without its sandbox fails here instead of exhausting the machine);
the render itself happens wherever the renderer puts it, and its peak is read from the
worker's terminated children (``RUSAGE_CHILDREN``) besides the worker's own.
"""

from __future__ import annotations

import resource
import shutil
from pathlib import Path
from typing import Any

import pytest

from lintas.engine.infra_repo import TEMPLATE_DIR
from tests.security.hostile import TEMPLATE_ATTACKS, TEMPLATE_FILE, template_attack
from tests.security.measure import in_child

MAX_S, MAX_MB = 10.0, 256.0
WORKER_AS = 2 * 1024**3


def render_attack(root: str) -> dict[str, Any]:
    """In the worker stand-in: render every target of the hostile repo, as the render stage does."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_AS, WORKER_AS))
    from lintas.engine.errors import InputError
    from lintas.workers.model import load_model
    from lintas.workers.render.env import Renderer
    from lintas.workers.render.targets import render_targets

    model = load_model(Path(root))
    renderer = Renderer(Path(root))
    try:
        render_targets(model, model.targets, renderer)
        diags: list[dict[str, Any]] = []
        error = None
    except InputError as exc:
        diags, error = [d.model_dump() for d in exc.diagnostics], exc.summary
    finally:
        close = getattr(renderer, "close", None)
        if close is not None:
            close()
    return {
        "error": error,
        "diagnostics": diags,
        "targets": sorted(model.targets),
        "children_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


@pytest.mark.parametrize("attack", sorted(TEMPLATE_ATTACKS))
def test_template_attack_is_a_located_error_in_bounded_time_and_memory(tmp_path: Path, attack: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(TEMPLATE_DIR, repo)
    template_attack(repo, attack)
    got = in_child(render_attack, str(repo), timeout_s=20)
    res = got.value
    assert res["error"] is not None, "the hostile template rendered"
    diags = res["diagnostics"]
    assert diags and all(d["file"] == TEMPLATE_FILE for d in diags), diags[:3]
    assert any(t in d["message"] or t == d["path"] for d in diags for t in res["targets"]), diags[:3]
    assert "Traceback" not in str(diags)
    assert got.seconds <= MAX_S, f"{attack}: {got.seconds:.1f}s"
    assert max(got.peak_rss_mb, res["children_peak_mb"]) <= MAX_MB, (got.peak_rss_mb, res["children_peak_mb"])
