"""Import direction: `engine` defines contracts and never imports `workers` (stages are
reached only through the entry-point registry), and subject names live in one module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_engine_never_imports_workers() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m == "workers" or m.startswith("workers."))
        for p in (ROOT / "engine").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_subject_strings_are_spelled_only_in_subjects_module() -> None:
    pattern = re.compile(r"""["']lintas\.(events|jobs|results|runs|dlq|notify)\b""")
    hits = [
        str(p.relative_to(ROOT))
        for base in ("engine", "workers")
        for p in (ROOT / base).rglob("*.py")
        if p.name != "subjects.py" and pattern.search(p.read_text())
    ]
    assert hits == []
