"""A malicious infra repo is contained: each attack gets a clear error and nothing escapes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lintas.engine.errors import InputError
from lintas.engine.settings import Settings
from lintas.workers.render.env import Renderer
from lintas.workers.render.stage import RenderStage
from lintas.workers.validate import ValidateStage
from tests.integration.helpers import make_repo

BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


@pytest.fixture
def hostile(tmp_path: Path, settings: Settings) -> Path:
    repo = make_repo(tmp_path, settings)
    (repo / "extra").mkdir()
    (repo / "extra" / "bomb.yaml").write_text(BOMB)
    os.symlink("/etc/passwd", repo / "extra" / "passwd.yaml")
    with open(repo / "extra" / "huge.yaml", "wb") as fh:
        fh.truncate(100 * 1024 * 1024)  # 100 MB, sparse
    return repo


def test_validate_reports_each_attack_and_reads_nothing_outside(hostile: Path, settings: Settings) -> None:
    result = ValidateStage(settings).run_local(hostile)
    assert result.outcome == "failed" and result.failure is not None
    by_file = {d.file: d.message for d in result.failure.diagnostics}
    assert "alias" in by_file["extra/bomb.yaml"]
    assert "outside" in by_file["extra/passwd.yaml"] or "symlink" in by_file["extra/passwd.yaml"]
    assert "too large" in by_file["extra/huge.yaml"]
    assert "root:" not in str(result.model_dump())  # /etc/passwd content never read


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.system('touch /tmp/lintas-pwned') }}",
        "{{ self._TemplateReference__context }}",
        "{% include '../../../../etc/passwd' %}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
    ],
)
def test_template_sandbox_escapes_are_refused(hostile: Path, settings: Settings, payload: str) -> None:
    (hostile / "templates" / "frr").mkdir(parents=True, exist_ok=True)
    (hostile / "templates" / "frr" / "frr.conf.j2").write_text(payload + "\n")
    for f in ("bomb.yaml", "passwd.yaml", "huge.yaml"):
        (hostile / "extra" / f).unlink()
    result = RenderStage(settings).run_local(hostile, against=None)
    assert result.outcome == "failed" and result.failure is not None
    assert result.failure.diagnostics and all(d.file == "templates/frr/frr.conf.j2" for d in result.failure.diagnostics)
    assert not Path("/tmp/lintas-pwned").exists()


def test_template_symlink_out_of_the_repo_is_refused(hostile: Path) -> None:
    (hostile / "templates" / "frr").mkdir(parents=True, exist_ok=True)
    os.symlink("/etc/passwd", hostile / "templates" / "frr" / "frr.conf.j2")
    with pytest.raises(InputError, match="outside|symlink"):
        Renderer(hostile).template("frr/frr.conf.j2")


@pytest.mark.parametrize(
    "payload",
    [
        "{{ 'a' * 10**10 }}",
        "{{ [0] * 10**9 }}",
        "{{ 9 ** 99999999 }}",  # (Jinja's ** is left-associative: 9 ** 9 ** 9 is harmless)
        "{{ '%999999999d' % 1 }}",
    ],
)
def test_resource_exhaustion_is_refused_before_allocating(tmp_path: Path, payload: str) -> None:
    tpl = tmp_path / "templates" / "frr"
    tpl.mkdir(parents=True)
    (tpl / "x.j2").write_text(payload + "\n")
    with pytest.raises(InputError, match="sandbox violation"):
        Renderer(tmp_path).render("frr/x.j2", target="leaf-01")
