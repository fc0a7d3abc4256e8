"""Located diagnostics: every user-facing error names a file, line, column and field path."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict


def format_path(path: Sequence[str | int]) -> str:
    """Render a document path the way users write it: ``stages.deploy.needs[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class Diagnostic(BaseModel):
    """One problem in one place of one file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    line: int | None = None
    column: int | None = None
    path: str = ""
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" [{self.path}]" if self.path else ""
        return f"{where}:{field} {self.message}"


def render_all(diagnostics: Iterable[Diagnostic]) -> str:
    return "\n".join(str(d) for d in diagnostics)


MAX_DIAGNOSTICS = 1000  # kept per report; the rest are only counted
_TOTAL = re.compile(r"\((\d+) in total\)$")


def more_problems(hidden: int, total: int) -> Diagnostic:
    """The last entry of a capped list: how many more there were."""
    return Diagnostic(file="(more)", message=f"... and {hidden} more problem(s) not shown ({total} in total)")


def counted(diagnostics: Sequence[Diagnostic]) -> int:
    """How many problems a (possibly capped) list stands for: its marker's total, else its length."""
    for d in reversed(diagnostics):
        if d.file == "(more)" and (m := _TOTAL.search(d.message)):
            return int(m.group(1))
    return len(diagnostics)


def capped(
    diagnostics: Sequence[Diagnostic], total: int | None = None, limit: int = MAX_DIAGNOSTICS
) -> list[Diagnostic]:
    """At most ``limit`` diagnostics, then one saying how many more (of ``total``) there were."""
    real = [d for d in diagnostics if d.file != "(more)"]
    if total is None:
        if len(real) < len(diagnostics) and len(real) <= limit:
            return list(diagnostics)  # capped already: its count stands
        total = counted(diagnostics) if len(real) < len(diagnostics) else len(real)
    kept = real[:limit]
    total = max(total, len(kept))
    return kept + [more_problems(total - len(kept), total)] if total > len(kept) else kept


class Collector:
    """Collects diagnostics up to a limit and counts the rest: bounded memory whatever a repo holds."""

    def __init__(self, limit: int = MAX_DIAGNOSTICS) -> None:
        self.limit = limit
        self.kept: list[Diagnostic] = []
        self.total = 0

    @property
    def full(self) -> bool:
        return len(self.kept) >= self.limit

    def add(self, diagnostic: Diagnostic) -> None:
        self.total += 1
        if len(self.kept) < self.limit:
            self.kept.append(diagnostic)

    def extend(self, diagnostics: Sequence[Diagnostic], total: int | None = None) -> None:
        """``total``: how many problems ``diagnostics`` stands for (it may itself be capped)."""
        real = [d for d in diagnostics if d.file != "(more)"]
        self.total += max(total if total is not None else counted(diagnostics), len(real))
        self.kept.extend(real[: max(self.limit - len(self.kept), 0)])

    def count(self, n: int) -> None:
        """Problems found but not built (the collector is full)."""
        self.total += n

    def __bool__(self) -> bool:
        return self.total > 0

    def result(self) -> list[Diagnostic]:
        return capped(self.kept, self.total, self.limit)
