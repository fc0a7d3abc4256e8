"""Helpers for model tests: a writable copy of the template repo, text edits that
must apply, and expected locations computed from the edited files."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import ModelError
from lintas.workers.model import InfraModel, load_model

TEMPLATE = Path(__file__).resolve().parents[2] / "gitops-repo-template"


@dataclass
class Repo:
    root: Path

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> str:
        return self.path(rel).read_text()

    def write(self, rel: str, text: str) -> None:
        self.path(rel).parent.mkdir(parents=True, exist_ok=True)
        self.path(rel).write_text(text)

    def edit(self, rel: str, old: str, new: str, count: int = 1) -> None:
        """Replace ``old`` by ``new`` exactly ``count`` times (fails if the template changed)."""
        text = self.read(rel)
        assert text.count(old) >= count, f"{old!r} not found {count} time(s) in {rel}"
        self.write(rel, text.replace(old, new, count))

    def append(self, rel: str, text: str) -> None:
        self.write(rel, self.read(rel) + text)

    def line(self, rel: str, needle: str, nth: int = 1) -> int:
        """1-based line of the ``nth`` line of ``rel`` containing ``needle``."""
        hits = [i for i, line in enumerate(self.read(rel).splitlines(), start=1) if needle in line]
        assert len(hits) >= nth, f"{needle!r} found {len(hits)} time(s) in {rel}"
        return hits[nth - 1]

    def load(self) -> InfraModel:
        return load_model(self.root)

    def errors(self) -> list[Diagnostic]:
        with pytest.raises(ModelError) as exc:
            load_model(self.root)
        return exc.value.diagnostics

    def error(self) -> Diagnostic:
        """The one and only diagnostic this repo produces."""
        errors = self.errors()
        assert len(errors) == 1, "\n".join(map(str, errors))
        return errors[0]


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    root = tmp_path / "infra"
    shutil.copytree(TEMPLATE, root)
    return Repo(root)


@pytest.fixture
def template_model() -> InfraModel:
    return load_model(TEMPLATE)


def at(diag: Diagnostic) -> tuple[str, int | None, str]:
    """(file, line, message): what an operator sees."""
    return diag.file, diag.line, diag.message


Edit = Callable[[Repo], None]
