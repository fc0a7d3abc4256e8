"""MirrorCache against real git repos: in-place reads, the fetch path, hostile content."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lintas.engine.errors import RepoAccessError
from lintas.engine.gitrepo import MirrorCache


def _git(cwd: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x.invalid",
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> tuple[Path, list[str]]:
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / ".lintas").mkdir()
    (work / ".lintas" / "pipeline.yaml").write_text("version: 1\nname: a\nstages:\n  validate: {}\n")
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "one")
    first = _git(work, "rev-parse", "HEAD")
    (work / "fabric.yaml").write_text("mtu: 9216\n")
    (work / "evil").symlink_to("/etc/passwd")
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "two")
    second = _git(work, "rev-parse", "HEAD")
    bare = tmp_path / "origin.git"
    _git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    return bare, [first, second]


@pytest.mark.parametrize("in_place", [True, False], ids=["local-in-place", "fetched-mirror"])
def test_reads_diffs_and_checkouts(tmp_path: Path, origin: tuple[Path, list[str]], in_place: bool) -> None:
    bare, (first, second) = origin
    url = str(bare) if in_place else f"file://{bare}"
    cache = MirrorCache(tmp_path / "cache", read_local_in_place=in_place)
    assert (
        cache.read_blob(url, first, ".lintas/pipeline.yaml", 1000) == b"version: 1\nname: a\nstages:\n  validate: {}\n"
    )
    assert cache.read_blob(url, first, "missing.yaml", 1000) is None
    assert cache.changed_paths(url, first, second) == ["evil", "fabric.yaml"]
    assert cache.changed_paths(url, "0" * 40, second) is None
    with pytest.raises(RepoAccessError, match="symlink"):
        cache.read_blob(url, second, "evil", 1000)
    with pytest.raises(RepoAccessError, match="too large"):
        cache.read_blob(url, second, "fabric.yaml", 3)
    tree = cache.checkout(url, first, tmp_path / "wt")
    assert (tree / ".lintas" / "pipeline.yaml").exists() and not (tree / "fabric.yaml").exists()
    mirror_dir = tmp_path / "cache" / "mirrors"
    assert mirror_dir.exists() is (not in_place)  # in-place reads never copy the repo
    with pytest.raises(RepoAccessError, match="not found|not our ref"):
        cache.read_blob(url, "f" * 40, "x", 10)
    cache.close()
