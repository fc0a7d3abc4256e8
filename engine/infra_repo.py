"""``lintas init``: a bare infra repo with a post-receive hook, plus a working clone."""

from __future__ import annotations

import shlex
import shutil
import stat
import sys
from pathlib import Path

import git

from lintas.engine import resources
from lintas.engine.errors import ConfigError

TEMPLATE_DIR = resources.template_dir()

HOOK = """#!/bin/sh
# Installed by `lintas init`. Publishes one push event per updated ref to NATS JetStream.
# It never blocks or fails the push: if NATS is down the events are spooled under
# LINTAS_HOME and sent by the next push or `lintas spool flush [--watch]`.
LINTAS_HOME={home}
export LINTAS_HOME
mkdir -p "$LINTAS_HOME/logs"
timeout 20 {lintas} emit push --git-dir "$GIT_DIR" --repo {repo} --url {url} 2>>"$LINTAS_HOME/logs/hook.log" || \\
  echo "lintas: could not record this push (see $LINTAS_HOME/logs/hook.log)" >&2
exit 0
"""


def lintas_command() -> str:
    exe = Path(sys.executable).parent / "lintas"
    return shlex.quote(str(exe)) if exe.exists() else f"{shlex.quote(sys.executable)} -m engine.cli.main"


def install_hook(bare: Path, repo_name: str, home: Path) -> Path:
    hook = bare / "hooks" / "post-receive"
    hook.write_text(
        HOOK.format(
            home=shlex.quote(str(home)),
            lintas=lintas_command(),
            repo=shlex.quote(repo_name),
            url=shlex.quote(str(bare.resolve())),
        )
    )
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return hook


def init_infra_repo(directory: Path, home: Path, *, template: Path = TEMPLATE_DIR) -> tuple[Path, Path]:
    """Create ``DIR.git`` (bare, hook installed) and ``DIR`` (clone seeded from the template, pushed)."""
    directory = directory.resolve()
    bare = directory.with_name(directory.name + ".git")
    if bare.exists() or directory.exists():
        raise ConfigError(f"{bare} or {directory} already exists")
    if not template.is_dir():
        raise ConfigError(f"template {template} not found")
    git.Repo.init(bare, bare=True, initial_branch="main").close()
    install_hook(bare, directory.name, home)
    work = git.Repo.clone_from(str(bare), str(directory))
    shutil.copytree(template, directory, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    with work.config_writer() as cw:
        if not work.git.config("--get", "user.email", with_exceptions=False):
            cw.set_value("user", "email", "lintas-demo@example.invalid")
            cw.set_value("user", "name", "Lintas Demo")
    work.git.checkout("-B", "main")
    work.git.add(A=True)
    work.index.commit("Initial infrastructure model from the Lintas template")
    work.git.push("origin", "main")
    work.git.branch("--set-upstream-to=origin/main", "main")
    work.close()  # ends gitpython's persistent cat-file processes
    return bare, directory
