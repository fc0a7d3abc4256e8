"""Located diagnostics: every user-facing error names a file, line, column and field path."""

from __future__ import annotations

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
