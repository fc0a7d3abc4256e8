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
import pygit2
from git.exc import GitCommandError

from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import RepoAccessError

_SAFE_CFG = ["-c", "core.hooksPath=/dev/null", "-c", "protocol.allow=user", "-c", "submodule.recurse=false"]
_PRIVATE = ["sh", "-c", 'umask 077 && exec "$@"', "lintas-git"]  # the umask of git only (not of this process)
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
    """Read access to repos by URL.

    A repo on this machine (the git server itself, where the post-receive hook runs) is
    read in place: nothing to fetch. Anything else is fetched into a bare mirror under
    ``cache_dir`` when a commit is missing. Object reads and tree diffs are in-process
    (libgit2); only fetch and clone run the git CLI.
    """

    def __init__(self, cache_dir: Path, *, read_local_in_place: bool = True) -> None:
        self.cache_dir = cache_dir
        self._in_place = read_local_in_place
        self._repos: dict[str, pygit2.Repository] = {}
        self._guard = threading.Lock()

    def _local(self, url: str) -> Path | None:
        return _local_repo(url) if self._in_place else None

    def path_for(self, url: str) -> Path:
        local = self._local(url)
        if local is not None:
            return local
        return self.cache_dir / "mirrors" / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".git")

    def _repo(self, url: str) -> pygit2.Repository:
        with self._guard:
            repo = self._repos.get(url)
        if repo is not None:
            return repo
        path = self.path_for(url)
        if self._local(url) is None:
            with _locked(path):
                if not (path / "HEAD").exists():
                    git.Repo.init(path, bare=True)
        repo = pygit2.Repository(str(path))
        with self._guard:
            return self._repos.setdefault(url, repo)

    def has_commit(self, url: str, sha: str) -> bool:
        repo = self._repo(url)
        try:
            obj = repo.get(sha)
        except ValueError:
            return False
        return obj is not None and obj.type == pygit2.enums.ObjectType.COMMIT

    def ensure(self, url: str, sha: str) -> pygit2.Repository:
        """Make ``sha`` present, fetching into the mirror only when it is missing."""
        repo = self._repo(url)
        if self.has_commit(url, sha):
            return repo
        if self._local(url) is not None:
            raise RepoAccessError([Diagnostic(file=url, message=f"commit {sha} not found")])
        path = self.path_for(url)
        with _locked(path):
            if not self.has_commit(url, sha):
                g = git.Git(str(path))
                try:
                    g.execute(
                        [
                            "git",
                            *_SAFE_CFG,
                            "fetch",
                            "--quiet",
                            "--prune",
                            "--no-tags",
                            url,
                            "+refs/heads/*:refs/heads/*",
                        ]
                    )
                    if not self.has_commit(url, sha):
                        g.execute(["git", *_SAFE_CFG, "fetch", "--quiet", "--no-tags", url, sha])
                except GitCommandError as exc:
                    raise RepoAccessError(
                        [Diagnostic(file=url, message=f"cannot fetch {sha[:12]}: {str(exc.stderr).strip()[:500]}")]
                    ) from exc
        if not self.has_commit(url, sha):
            raise RepoAccessError([Diagnostic(file=url, message=f"commit {sha} not found after fetch")])
        return repo

    def head(self, url: str, ref: str) -> str | None:
        """The commit ``ref`` points to now (a remote is fetched first); None if the ref is absent."""
        repo = self._repo(url)
        if self._local(url) is None:
            path = self.path_for(url)
            with _locked(path):
                try:
                    git.Git(str(path)).execute(
                        [
                            "git",
                            *_SAFE_CFG,
                            "fetch",
                            "--quiet",
                            "--prune",
                            "--no-tags",
                            url,
                            "+refs/heads/*:refs/heads/*",
                        ]
                    )
                except GitCommandError as exc:
                    raise RepoAccessError(
                        [Diagnostic(file=url, message=f"cannot fetch: {str(exc.stderr).strip()[:500]}")]
                    ) from exc
        found = repo.references.get(ref)
        if found is None:
            return None
        return str(found.resolve().target)

    def is_ancestor(self, url: str, ancestor: str, descendant: str) -> bool:
        """True when ``ancestor`` is a strict ancestor of ``descendant`` (both must be present here)."""
        if ancestor == descendant or not (self.has_commit(url, ancestor) and self.has_commit(url, descendant)):
            return False
        return bool(self._repo(url).descendant_of(descendant, ancestor))

    def read_blob(self, url: str, sha: str, path: str, max_bytes: int) -> bytes | None:
        """The file at ``path`` in commit ``sha``, or None if absent. Symlinks are refused."""
        repo = self.ensure(url, sha)
        tree = _tree(repo, sha)
        try:
            entry = tree[path]
        except KeyError:
            return None
        if entry.filemode == pygit2.enums.FileMode.LINK:
            raise RepoAccessError([Diagnostic(file=path, message="is a symlink; refusing to follow it")])
        if entry.type != pygit2.enums.ObjectType.BLOB:
            raise RepoAccessError([Diagnostic(file=path, message="not a regular file")])
        blob = repo.get(entry.id)
        if not isinstance(blob, pygit2.Blob):
            raise RepoAccessError([Diagnostic(file=path, message="not a regular file")])
        if blob.size > max_bytes:
            raise RepoAccessError([Diagnostic(file=path, message=f"file too large ({blob.size} bytes > {max_bytes})")])
        data: bytes = blob.data
        return data

    def changed_paths(self, url: str, before: str | None, sha: str) -> list[str] | None:
        """Paths changed between ``before`` and ``sha``; None when unknown (new branch, force push)."""
        if not before or set(before) == {"0"}:
            return None
        repo = self.ensure(url, sha)
        if not self.has_commit(url, before):
            return None
        diff = _tree(repo, before).diff_to_tree(_tree(repo, sha))
        paths = {p for d in diff.deltas for p in (d.old_file.path, d.new_file.path) if p}
        return sorted(paths)

    def checkout(self, url: str, sha: str, dest: Path) -> Path:
        """A fresh work tree at exactly ``sha`` (detached). Replaces ``dest`` if it exists."""
        self.ensure(url, sha)
        source = self.path_for(url)
        if dest.exists():
            shutil.rmtree(dest)
        private_dirs(dest.parent)
        try:  # umask 077: every directory 0700 and every file 0600 (0700 if executable) from the start
            git.Git().execute(
                [*_PRIVATE, "git", *_SAFE_CFG, "clone", "--quiet", "--shared", "--no-checkout", str(source), str(dest)]
            )
            git.Git(str(dest)).execute([*_PRIVATE, "git", *_SAFE_CFG, "checkout", "--quiet", "--detach", sha])
        except GitCommandError as exc:
            raise RepoAccessError(
                [Diagnostic(file=url, message=f"cannot check out {sha[:12]}: {str(exc.stderr).strip()[:500]}")]
            ) from exc
        with git.Repo(dest) as tree:
            head = tree.head.commit.hexsha
        if head != sha:
            raise RepoAccessError([Diagnostic(file=url, message=f"work tree is at {head}, expected {sha}")])
        return dest

    def close(self) -> None:
        with self._guard:
            for repo in self._repos.values():
                repo.free()
            self._repos.clear()


def private_dirs(path: Path) -> None:
    """``path`` and any missing parents, created 0700 (an existing ``path`` is made 0700 too)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)


def _tree(repo: pygit2.Repository, sha: str) -> pygit2.Tree:
    obj = repo.get(sha)
    if obj is None:
        raise RepoAccessError([Diagnostic(file=sha, message="object not found")])
    return obj.peel(pygit2.Tree)


def _local_repo(url: str) -> Path | None:
    """A git repo directory on this machine (plain path or file:// URL), else None."""
    raw = url.removeprefix("file://")
    if "://" in raw or raw.startswith("git@"):
        return None
    p = Path(raw)
    if (p / "HEAD").is_file() and (p / "objects").is_dir():
        return p
    if (p / ".git" / "HEAD").is_file():
        return p
    return None
