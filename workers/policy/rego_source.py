"""Just enough Rego lexing to read a module's shape without a Rego parser.

:func:`mask` blanks comments and string contents (keeping every newline and column),
so the regular expressions below never match inside a string or a comment. On top
of it: the package of a module, its ``test_*`` rules, calls to built-ins Lintas does
not allow in repo policies, and :func:`namespace`, which moves a module under a
private root of ``data`` (used to keep concurrent evaluations apart on a shared OPA).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PACKAGE = re.compile(r"^[ \t]*package[ \t]+([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)[ \t]*$", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b(?=[ \t]*(?:if\b|\{|:=|=))", re.MULTILINE)
_DATA_ROOT = re.compile(r"(?<![\w.])data\b(?![ \t]*:=)")
_IMPORT = re.compile(r"^[ \t]*import[ \t]+data\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)", re.MULTILINE)
_DATA_REF = re.compile(r"(?<![\w.])data\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")

# Built-ins a repo policy may not call: network access, the server's environment and
# configuration, and non-determinism (the two backends must agree, and a run must be
# reproducible: policies read the evaluation time from input.meta.evaluated_at).
FORBIDDEN_BUILTINS: dict[str, str] = {
    "http.send": "policies must not reach the network",
    "net.lookup_ip_addr": "policies must not reach the network (DNS)",
    "opa.runtime": "exposes the policy server's environment and configuration",
    "time.now_ns": "non-deterministic: use input.meta.evaluated_at",
    "rand.intn": "non-deterministic",
    "uuid.rfc4122": "non-deterministic",
}
_FORBIDDEN = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(n).replace(r"\.", r"[ \t]*\.[ \t]*") for n in FORBIDDEN_BUILTINS) + r")\b"
)


def mask(source: str) -> str:
    """``source`` with comments and string contents replaced by spaces (same length, same lines)."""
    out = list(source)
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c == "#":
            while i < n and source[i] != "\n":
                out[i] = " "
                i += 1
        elif c == '"':
            i += 1
            while i < n and source[i] not in '"\n':
                if source[i] == "\\" and i + 1 < n and source[i + 1] != "\n":
                    out[i] = out[i + 1] = " "
                    i += 2
                    continue
                out[i] = " "
                i += 1
            i += 1
        elif c == "`":
            i += 1
            while i < n and source[i] != "`":
                if source[i] != "\n":
                    out[i] = " "
                i += 1
            i += 1
        else:
            i += 1
    return "".join(out)


def line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


@dataclass(frozen=True)
class ModuleInfo:
    """What Lintas needs to know about one module."""

    file: str
    package: str | None
    package_line: int
    tests: tuple[tuple[str, int], ...]  # (rule name, line)
    forbidden: tuple[tuple[str, int, int], ...]  # (built-in, line, column)
    imports: frozenset[str]  # packages (or data paths) this module reads

    @property
    def is_test_file(self) -> bool:
        return self.file.endswith("_test.rego")


def inspect(file: str, source: str) -> ModuleInfo:
    code = mask(source)
    pkg = _PACKAGE.search(code)
    tests = tuple(dict.fromkeys((m.group(1), line_col(code, m.start())[0]) for m in _TEST_RULE.finditer(code)))
    seen: dict[str, int] = {}
    for name, line in tests:
        seen.setdefault(name, line)
    forbidden = tuple((re.sub(r"\s+", "", m.group(1)), *line_col(code, m.start())) for m in _FORBIDDEN.finditer(code))
    refs = {m.group(1) for m in _IMPORT.finditer(code)} | {m.group(1) for m in _DATA_REF.finditer(code)}
    return ModuleInfo(
        file=file,
        package=pkg.group(1) if pkg else None,
        package_line=line_col(code, pkg.start(1))[0] if pkg else 1,
        tests=tuple(seen.items()),
        forbidden=forbidden,
        imports=frozenset(refs),
    )


def namespace(source: str, ns: str) -> str:
    """Move the module under ``data.<ns>``: its package and every reference to ``data``.

    Lines are unchanged (error locations still point at the user's line); columns
    after a rewritten reference shift by ``len(ns) + 1``.
    """
    code = mask(source)
    edits: list[tuple[int, int, str]] = []
    pkg = _PACKAGE.search(code)
    if pkg:
        edits.append((pkg.start(1), pkg.start(1), ns + "."))
    for m in _DATA_ROOT.finditer(code):
        edits.append((m.end(), m.end(), "." + ns))
    out = source
    for start, end, text in sorted(edits, reverse=True):
        out = out[:start] + text + out[end:]
    return out


def depends_on(info: ModuleInfo, package: str) -> bool:
    return any(ref == package or ref.startswith(package + ".") for ref in info.imports)
