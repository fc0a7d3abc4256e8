"""Work trees are private and temporary (issue 13, item 5): 0700 directories and 0600 files,
removed when their stage ends (kept only with LINTAS_KEEP_WORK_TREES, for debugging), and a
file that secscan blocked is never kept longer than the scan."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any, cast

import pytest

from lintas.engine.app import build_stages, stack
from lintas.engine.events import Job
from lintas.engine.gitrepo import MirrorCache
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext
from lintas.engine.state import RunState
from tests.integration.helpers import commit, git, make_repo, pipeline, push, run_id_of, wait_run

AWS = "AKIA" + "Q7WXKP2M4RZT6YB3"
SECRET_FILE = "keys/aws.env"
FILES = {SECRET_FILE: f"AWS_ACCESS_KEY_ID={AWS}\n", "tools/run.sh": "#!/bin/sh\necho hi\n"}


def modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for p in root.rglob("*"):
        if ".git" in p.relative_to(root).parts[:1] and p.is_file():
            continue  # git's own object files: read-only by git's choice, inside a 0700 directory
        out[str(p.relative_to(root))] = stat.S_IMODE(p.lstat().st_mode)
    return out


def context(settings: Settings, tmp: Path, repo: Path, sha: str, stage: str = "secscan") -> StageContext:
    job = Job(
        job_id=f"r-1/{stage}/1",
        run_id="r-1",
        stage=stage,
        kind=stage,
        attempt=1,
        repo=repo.name,
        url=str(repo.with_name(repo.name + ".git")),
        ref="refs/heads/main",
        sha=sha,
        timeout_s=60,
    )
    return StageContext(job, "w", settings, cast(Any, None), MirrorCache(tmp / "cache"), cast(Any, None))


def test_a_checkout_is_private_and_goes_away(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    repo = make_repo(tmp_path, settings)
    sha = commit(repo, settings, FILES, "secret")
    git(repo, "push", "-q", "origin", "HEAD:main", settings=settings, check=False)  # (no NATS: the hook spools)
    ctx = context(settings, tmp_path, repo, sha)
    root = ctx.checkout()
    assert stat.S_IMODE(settings.work_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(ctx.workdir.stat().st_mode) == 0o700
    assert stat.S_IMODE(ctx.workdir.parent.stat().st_mode) == 0o700
    found = modes(root)
    assert found[SECRET_FILE] == 0o600 and found["tools/run.sh"] in (0o600, 0o700)
    bad = {p: oct(m) for p, m in found.items() if m & 0o077}
    assert not bad, f"readable by others: {bad}"
    ctx.discard([SECRET_FILE, "../../../../etc/hostname", "fabric"])  # outside the tree, or a dir: left alone
    assert not (root / SECRET_FILE).exists() and (root / "fabric").is_dir() and Path("/etc/hostname").exists()
    ctx.cleanup()
    assert not ctx.workdir.exists() and not ctx.workdir.parent.exists() and settings.work_dir.exists()


def test_keep_work_trees_keeps_them_for_debugging(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", keep_work_trees=True)
    repo = make_repo(tmp_path, settings)
    ctx = context(settings, tmp_path, repo, git(repo, "rev-parse", "HEAD", settings=settings).stdout.strip())
    root = ctx.checkout()
    ctx.cleanup()
    assert (root / "fabric").is_dir()


@pytest.mark.integration
@pytest.mark.parametrize("keep", [False, True], ids=["removed", "kept-for-debugging"])
async def test_secscan_blocked_file_is_gone_when_the_stage_ends(tmp_path: Path, settings: Settings, keep: bool) -> None:
    settings = settings.model_copy(update={"keep_work_trees": keep})
    repo = make_repo(tmp_path, settings)
    async with stack(settings, stages=build_stages(settings, ["secscan"])) as st:
        sha = commit(repo, settings, {**FILES, **pipeline("  secscan: {}\n")}, "a secret")
        push(repo, settings)
        run = await wait_run(st.topo, run_id_of(repo, sha))
    assert run.state is RunState.failed and SECRET_FILE in (run.stages["secscan"].error or "")
    tree = settings.work_dir / run.run_id / "secscan" / "repo"
    if not keep:
        assert not (settings.work_dir / run.run_id).exists()
        return
    assert (tree / "fabric").is_dir() and not (tree / SECRET_FILE).exists()  # kept, minus the secret
    assert not {p: oct(m) for p, m in modes(tree).items() if m & 0o077}
