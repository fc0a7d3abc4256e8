"""Read files of a user's repository without ever leaving it.

Every path a repository names (pipeline files, templates, policies, inventory)
goes through :class:`RepoFS`. Absolute paths, ``..`` above the root and
symlinks whose target lies outside the root are refused with a
:class:`~engine.errors.RepoAccessError`; symlinks that stay inside are followed.
Oversized and special files (fifos, devices, sockets) are refused before a byte
is read.

Paths are resolved component by component and the final open uses
``O_NOFOLLOW``; a writer racing to swap an intermediate directory for a symlink
between resolve and open is out of scope (the checkout belongs to Lintas).
"""

from __future__ import annotations

import os
import re
import stat
from functools import lru_cache
from pathlib import Path, PurePosixPath

from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import RepoAccessError
from lintas.engine.yamlsafe import Located, load_yaml, read_limited

_MAX_FILE_BYTES = 5 * 1024 * 1024
_SKIP_DIRS = frozenset({".git"})


@lru_cache(maxsize=512)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile a path glob: ``*`` and ``?`` stay within one path segment,
    ``**`` matches across ``/`` (``a/**/b`` also matches ``a/b``), ``[...]``
    is a character class (``[!...]`` negated)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def glob_match(pattern: str, path: str) -> bool:
    return compile_glob(pattern).fullmatch(path) is not None


class RepoFS:
    """A read-only view of one repository checkout, confined to ``root``."""

    def __init__(self, root: Path, *, max_file_bytes: int = _MAX_FILE_BYTES) -> None:
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise RepoAccessError([Diagnostic(file=str(root), message="repository root is not a directory")])
        self.max_file_bytes = max_file_bytes

    def _error(self, rel: str, message: str) -> RepoAccessError:
        return RepoAccessError([Diagnostic(file=rel, message=message)])

    def _inside(self, path: str) -> bool:
        root = str(self.root)
        return path == root or path.startswith(root.rstrip("/") + "/")

    def resolve(self, rel: str) -> Path:
        """Absolute path of ``rel`` inside the root, following in-root symlinks.

        The path need not exist; only existing components are resolved.
        """
        if not rel or "\x00" in rel:
            raise self._error(rel, "invalid path")
        pure = PurePosixPath(rel)
        if pure.is_absolute():
            raise self._error(
                rel,
                "absolute paths are not allowed; use a path relative to the repository",
            )
        cur = self.root
        for part in pure.parts:
            if part == ".":
                continue
            if part == "..":
                if cur == self.root:
                    raise self._error(rel, "path escapes the repository ('..' above the root)")
                cur = cur.parent
                continue
            nxt = cur / part
            try:
                is_link = stat.S_ISLNK(os.lstat(nxt).st_mode)
            except OSError:
                is_link = False
            if is_link:
                target = os.path.realpath(nxt)
                if not self._inside(target):
                    raise self._error(rel, f"symlink '{self._rel(nxt)}' points outside the repository")
                cur = Path(target)
            else:
                cur = nxt
        return cur

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path != self.root else "."

    def exists(self, rel: str) -> bool:
        return self.resolve(rel).exists()

    def read_bytes(self, rel: str) -> bytes:
        return read_limited(
            self.resolve(rel),
            max_bytes=self.max_file_bytes,
            display_name=rel,
            error=RepoAccessError,
            nofollow=True,
        )

    def read_text(self, rel: str, encoding: str = "utf-8") -> str:
        data = self.read_bytes(rel)
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise self._error(rel, f"not valid {encoding} text (byte {exc.start})") from None

    def load_yaml(self, rel: str, **limits: int) -> Located:
        limits.setdefault("max_bytes", self.max_file_bytes)
        limits["max_bytes"] = min(limits["max_bytes"], self.max_file_bytes)
        return load_yaml(self.read_bytes(rel), file=rel, **limits)

    def glob(self, pattern: str, *, max_entries: int = 200_000) -> list[str]:
        """Files (not directories) whose repo-relative posix path matches ``pattern``.

        ``.git`` is skipped. Symlinked directories are descended into when they
        resolve inside the root and are not an ancestor of the link (no loops);
        symlinks pointing outside the root are listed (a read of them fails loudly)
        but never followed. More than
        ``max_entries`` directory entries is an error, not a hang.
        """
        regex = compile_glob(pattern)
        found: list[str] = []
        budget = max_entries
        pending: list[tuple[str, str, frozenset[str]]] = [(str(self.root), "", frozenset())]
        while pending:
            real, prefix, ancestors = pending.pop()
            ancestors = ancestors | {real}
            try:
                entries = list(os.scandir(real))
            except OSError:
                continue
            budget -= len(entries)
            if budget < 0:
                raise self._error(pattern, f"glob visits more than {max_entries} entries")
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_symlink():
                    path = os.path.realpath(entry.path)
                    if not self._inside(path):
                        # Listed, never followed: reading it fails with a clear error,
                        # so a hostile link is reported rather than silently ignored.
                        if regex.fullmatch(rel):
                            found.append(rel)
                        continue
                    is_dir, is_file = os.path.isdir(path), os.path.isfile(path)
                else:
                    path = entry.path
                    is_dir = entry.is_dir(follow_symlinks=False)
                    is_file = entry.is_file(follow_symlinks=False)
                if is_dir:
                    if entry.name not in _SKIP_DIRS and path not in ancestors:
                        pending.append((path, rel + "/", ancestors))
                elif is_file and regex.fullmatch(rel):
                    found.append(rel)
        return sorted(found)
