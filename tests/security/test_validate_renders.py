"""`lintas validate` never says "valid" for a repo whose templates cannot render (issue 13, item 6)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from lintas.engine.infra_repo import TEMPLATE_DIR

LINTAS = [sys.executable, "-m", "lintas.engine.cli.main"]


def validate(path: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LINTAS, "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "LINTAS_HOME": str(home), "COLUMNS": "300"},
    )


def test_a_template_that_cannot_render_fails_validate_with_its_location(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(TEMPLATE_DIR, repo)
    tpl = repo / "templates" / "frr" / "frr.conf.j2"
    tpl.parent.mkdir(parents=True)
    tpl.write_text("! frr\n{{ no_such_variable.field }}\n")
    out = validate(repo, tmp_path / "home")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "templates/frr/frr.conf.j2:2: [leaf-01]" in out.stdout and "no_such_variable" in out.stdout
    assert "leaf-01" in out.stdout or "spine-01" in out.stdout  # the target it failed for
    assert "valid:" not in out.stdout


def test_a_valid_repo_says_its_templates_were_rendered(tmp_path: Path) -> None:
    out = validate(TEMPLATE_DIR, tmp_path / "home")
    assert out.returncode == 0, out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    assert "valid: " in text and "templates: rendered for 8 target(s)" in text
