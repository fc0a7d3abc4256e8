"""The files of a checkout that the scanners read, found through RepoFS (nothing outside it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from lintas.engine.errors import RepoAccessError
from lintas.engine.repofs import RepoFS

PYTHON_SUFFIXES = (".py", ".pyw")
# files where `key: value` / `key = value` assignments and quoted strings are configuration or code
CONFIG_SUFFIXES = (
    ".yaml",
    ".yml",
    ".json",
    ".ini",
    ".cfg",
    ".conf",
    ".cnf",
    ".env",
    ".properties",
    ".toml",
    ".tf",
    ".tfvars",
    ".j2",
    ".jinja",
    ".jinja2",
    ".tmpl",
    ".tpl",
    ".sh",
    ".bash",
    ".zsh",
    ".ps1",
    ".xml",
    ".py",
    ".pyw",
    ".rb",
    ".js",
    ".ts",
    ".go",
    ".pp",
    ".sls",
    ".rego",
)
CONFIG_NAMES = (".env", ".netrc", ".pgpass", ".npmrc", ".pypirc", "credentials", "config")


@dataclass(frozen=True)
class RepoFile:
    rel: str
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    @property
    def is_config(self) -> bool:
        """Assignments and quoted strings here are values (not prose, as in README.md)."""
        p = PurePosixPath(self.rel)
        return p.suffix.lower() in CONFIG_SUFFIXES or p.name in CONFIG_NAMES or p.name.startswith(".env")

    @property
    def is_python(self) -> bool:
        if self.rel.lower().endswith(PYTHON_SUFFIXES):
            return True
        first = self.data[:128].split(b"\n", 1)[0]
        return PurePosixPath(self.rel).suffix == "" and first.startswith(b"#!") and b"python" in first


@dataclass
class Inventory:
    files: list[RepoFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)

    @property
    def python(self) -> list[RepoFile]:
        return [f for f in self.files if f.is_python]


def collect(root: Path, *, max_file_bytes: int) -> Inventory:
    """Every regular text file of the checkout (``.git`` excluded); binaries and oversized
    files are listed as skipped, with the reason."""
    fs = RepoFS(root, max_file_bytes=max_file_bytes)
    inv = Inventory()
    for rel in sorted(fs.glob("**")):
        try:
            data = fs.read_bytes(rel)
        except RepoAccessError as exc:
            inv.skipped.append((rel, exc.diagnostics[0].message if exc.diagnostics else "unreadable"))
            continue
        if b"\x00" in data[:8192]:
            inv.skipped.append((rel, "binary"))
            continue
        inv.files.append(RepoFile(rel, data))
    return inv
