"""Git access for hostile repos: bare mirror cache, blob reads, per-run work trees.

Repo content is data only. No hooks run (fetch/clone run none, and we set
``core.hooksPath`` to an empty dir), filters and submodules are not used.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import git
from git.exc import BadName, GitCommandError

from engine.errors import RepoAccessError
from engine.diagnostics import Diagnostic

_SAFE_CFG = ["-c", "core.hooksPath=/dev/null", "-c", "protocol.allow=user", "-c", "submodule.recurse=false"]
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _thread_lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise writers of one mirror across threads and processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _thread_lock(str(path)), open(str(path) + ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class MirrorCache:
    """Bare mirrors under ``cache_dir``, one per repo URL."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._repos: dict[str, git.Repo] = {}
        self._guard = threading.Lock()

    def path_for(self, url: str) -> Path:
        return self.cache_dir / "mirrors" / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".git")

    def _repo(self, url: str) -> git.Repo:
        path = self.path_for(url)
        with self._guard:
            repo = self._repos.get(url)
        if repo is not None:
            return repo
        with _locked(path):
            if not (path / "HEAD").exists():
                git.Repo.init(path, bare=True)
            repo = git.Repo(path)
        with self._guard:
            return self._repos.setdefault(url, repo)

    def has_commit(self, url: str, sha: str) -> bool:
        repo = self._repo(url)
        try:
            return repo.commit(sha).hexsha == sha
        except (BadName, ValueError, GitCommandError):
            return False

    def ensure(self, url: str, sha: str) -> git.Repo:
        """Make ``sha`` present in the mirror, fetching only when it is missing."""
        repo = self._repo(url)
        if self.has_commit(url, sha):
            return repo
        with _locked(self.path_for(url)):
            if not self.has_commit(url, sha):
                try:
                    repo.git.execute(
                        ["git", *_SAFE_CFG, "fetch", "--quiet", "--prune", "--no-tags", url,
                         "+refs/heads/*:refs/heads/*"]
                    )
                    if not self.has_commit(url, sha):
                        repo.git.execute(["git", *_SAFE_CFG, "fetch", "--quiet", "--no-tags", url, sha])
                except GitCommandError as exc:
                    raise RepoAccessError(
                        [Diagnostic(file=url, message=f"cannot fetch {sha[:12]}: {exc.stderr.strip()[:500]}")]
                    ) from exc
        if not self.has_commit(url, sha):
            raise RepoAccessError([Diagnostic(file=url, message=f"commit {sha} not found after fetch")])
        return repo

    def read_blob(self, url: str, sha: str, path: str, max_bytes: int) -> bytes | None:
        """The file at ``path`` in commit ``sha``, or None if absent. Symlinks are refused."""
        repo = self.ensure(url, sha)
        tree = repo.commit(sha).tree
        try:
            blob = tree / path
        except KeyError:
            return None
        if blob.type != "blob":
            raise RepoAccessError([Diagnostic(file=path, message="not a regular file")])
        if blob.mode == 0o120000:
            raise RepoAccessError([Diagnostic(file=path, message="is a symlink; refusing to follow it")])
        if blob.size > max_bytes:
            raise RepoAccessError([Diagnostic(file=path, message=f"file too large ({blob.size} bytes > {max_bytes})")])
        data: bytes = blob.data_stream.read()
        return data

    def changed_paths(self, url: str, before: str | None, sha: str) -> list[str] | None:
        """Paths changed between ``before`` and ``sha``; None when unknown (new branch, force push)."""
        if not before or set(before) == {"0"}:
            return None
        repo = self.ensure(url, sha)
        if not self.has_commit(url, before):
            return None
        out = repo.git.execute(["git", "diff", "--name-only", "--no-renames", "-z", before, sha])
        return sorted(p for p in str(out).split("\0") if p)

    def checkout(self, url: str, sha: str, dest: Path) -> Path:
        """A fresh work tree at exactly ``sha`` (detached). Replaces ``dest`` if it exists."""
        mirror = self.ensure(url, sha)
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            git.Git().execute(
                ["git", *_SAFE_CFG, "clone", "--quiet", "--shared", "--no-checkout", str(mirror.git_dir), str(dest)]
            )
            git.Git(str(dest)).execute(["git", *_SAFE_CFG, "checkout", "--quiet", "--detach", sha])
        except GitCommandError as exc:
            raise RepoAccessError(
                [Diagnostic(file=url, message=f"cannot check out {sha[:12]}: {exc.stderr.strip()[:500]}")]
            ) from exc
        head = git.Repo(dest).head.commit.hexsha
        if head != sha:
            raise RepoAccessError([Diagnostic(file=url, message=f"work tree is at {head}, expected {sha}")])
        return dest

    def close(self) -> None:
        with self._guard:
            for repo in self._repos.values():
                repo.close()
            self._repos.clear()
