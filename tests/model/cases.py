"""Table of failing fixtures: an edit of the template and the one diagnostic it must cause."""

from __future__ import annotations

from dataclasses import dataclass, field

from .conftest import Repo, at


@dataclass(frozen=True)
class Edit:
    file: str
    old: str
    new: str
    count: int = 1
    append: bool = False

    def apply(self, repo: Repo) -> None:
        if self.append:
            repo.append(self.file, self.new)
        else:
            repo.edit(self.file, self.old, self.new, self.count)


def append(file: str, text: str) -> Edit:
    return Edit(file, "", text, append=True)


@dataclass(frozen=True)
class Case:
    """``message`` may contain ``{line:FILE:NEEDLE[:NTH]}`` placeholders for other locations."""

    edits: tuple[Edit, ...]
    file: str
    needle: str
    message: str
    nth: int = 1
    only: bool = True
    extra: tuple[str, ...] = field(default=())

    def run(self, repo: Repo) -> None:
        for edit in self.edits:
            edit.apply(repo)
        expected = (self.file, repo.line(self.file, self.needle, self.nth), _expand(repo, self.message))
        errors = repo.errors()
        found = [at(d) for d in errors]
        if self.only:
            assert found == [expected], "\n".join(map(str, errors))
        else:
            assert expected in found, "\n".join(map(str, errors))
        for message in self.extra:
            assert _expand(repo, message) in [d.message for d in errors]


def _expand(repo: Repo, message: str) -> str:
    """Replace ``{line:file:needle[:nth]}`` by that line number."""
    out = ""
    rest = message
    while (start := rest.find("{line:")) != -1:
        end = rest.index("}", start)
        file, needle, *nth = rest[start + 6 : end].split("|")
        out += rest[:start] + str(repo.line(file, needle, int(nth[0]) if nth else 1))
        rest = rest[end + 1 :]
    return out + rest
