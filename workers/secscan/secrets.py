"""Secret detection: known key formats everywhere, assignments and high-entropy values in
configuration and code. A finding is (rule, file, line); the matched text is used only to
decide and to fingerprint, and is never put into a message.

What counts as *not* a secret, so the infra repo's own conventions pass: references
(``env:NAME``, ``file:/path``, ``vault:...``), template and shell expressions (``{{ x }}``,
``${X}``, ``$X``), placeholders (``<...>``, ``changeme``, ``****``), empty values and
YAML nulls/booleans.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from lintas.workers.secscan.assignments import (
    Pairs,
    clean,
    device_config_secret,
    is_reference,
    line_pairs,
    looks_secret,
    python_pairs,
)
from lintas.workers.secscan.files import RepoFile
from lintas.workers.secscan.findings import EntropyOptions, Finding, Level, fingerprint


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    pattern: re.Pattern[str]
    severity: Level = "high"
    confidence: Level = "high"
    group: int = 0  # the group holding the secret (0: the whole match)


TOKEN_RULES = (
    Rule(
        "aws-access-key-id",
        "AWS access key id",
        re.compile(r"(?<![A-Z0-9])((?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16})(?![A-Z0-9])"),
        group=1,
    ),
    Rule(
        "aws-secret-access-key",
        "AWS secret access key",
        re.compile(
            r"(?i)aws.{0,20}?(?:secret|private).{0,20}?['\"]?\s*[:=]\s*['\"]?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        group=1,
    ),
    Rule("private-key", "private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    Rule(
        "github-token",
        "GitHub token",
        re.compile(r"(?<![A-Za-z0-9_])((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})"),
        group=1,
    ),
    Rule("gitlab-token", "GitLab token", re.compile(r"(?<![A-Za-z0-9_-])(glpat-[A-Za-z0-9_-]{20,})"), group=1),
    Rule("slack-token", "Slack token", re.compile(r"(?<![A-Za-z0-9])(xox[abposr]-[A-Za-z0-9-]{10,})"), group=1),
    Rule(
        "jwt",
        "JSON web token",
        re.compile(r"(?<![A-Za-z0-9_-])(eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"),
        confidence="medium",
        group=1,
    ),
    Rule(
        "url-credentials",
        "password in a URL",
        re.compile(r"\b[a-z][a-z0-9+.-]{1,20}://[^/\s:@'\"]{1,128}:([^@\s'\"/]{1,256})@"),
        group=1,
    ),
)

_CANDIDATE = re.compile(r"[A-Za-z0-9+/=_-]{20,}")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_QUOTED_VALUE = re.compile(r"""(["'])([^"'\s]{16,})\1""")
_VALUE_AFTER = re.compile(r"""[:=][ \t]*([^\s"'#]{16,})[ \t]*(?:#.*)?$""")
MAX_LINE = 8192


def entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def high_entropy(token: str, opts: EntropyOptions) -> bool:
    if len(token) < opts.min_length or _UUID.match(token):
        return False
    if _HEX.match(token):
        return len(token) >= max(opts.min_length, 32) and entropy(token) >= opts.hex
    has_digit = any(c.isdigit() for c in token)
    has_upper = any(c.isupper() for c in token)
    has_lower = any(c.islower() for c in token)
    return has_digit and has_upper and has_lower and entropy(token) >= opts.base64


def _finding(  # noqa: PLR0913 - the fields of one SARIF finding
    rule: str,
    name: str,
    f: RepoFile,
    line: int,
    col: int,
    msg: str,
    fp: str,
    confidence: Level = "high",
    severity: Level = "high",
) -> Finding:
    return Finding(
        tool="secrets",
        rule=rule,
        name=name,
        file=f.rel,
        line=line,
        column=col,
        severity=severity,
        confidence=confidence,
        message=msg,
        fingerprint=fp,
    )


def scan_file(f: RepoFile, opts: EntropyOptions) -> Iterator[Finding]:
    """Findings of one file, at most one per (rule, line)."""
    config = f.is_config
    python = python_pairs(f.text) if config and f.is_python else None
    for lineno, raw in enumerate(f.text.splitlines(), start=1):
        line = raw[:MAX_LINE]
        found: dict[str, Finding] = {}
        secrets: list[str] = []
        for rule in TOKEN_RULES:
            for m in rule.pattern.finditer(line):
                secret = m.group(rule.group)
                if rule.id == "url-credentials" and is_reference(clean(secret)):
                    continue
                secrets.append(secret)
                found.setdefault(
                    rule.id,
                    _finding(
                        rule.id,
                        rule.name,
                        f,
                        lineno,
                        m.start(rule.group) + 1,
                        f"{rule.name} written in the repo",
                        fingerprint(rule.id, secret),
                        rule.confidence,
                    ),
                )
        if config:
            for finding, secret in _assignments(f, lineno, line, python):
                secrets.append(secret)
                found.setdefault(finding.rule, finding)
            for token, col in _entropy_candidates(line) if opts.enabled else ():
                if any(token in s or s in token for s in secrets) or not high_entropy(token, opts):
                    continue
                secrets.append(token)
                found.setdefault(
                    "high-entropy-string",
                    _finding(
                        "high-entropy-string",
                        "high-entropy string",
                        f,
                        lineno,
                        col,
                        f"high-entropy string ({len(token)} characters) that looks like a key or token",
                        fingerprint("high-entropy-string", token),
                        "medium",
                    ),
                )
        yield from found.values()


def _assignments(f: RepoFile, lineno: int, line: str, python: Pairs | None) -> Iterator[tuple[Finding, str]]:
    for key, value, col in line_pairs(f, line, python, lineno):
        if looks_secret(key, value):
            yield (
                _finding(
                    "secret-assignment",
                    "secret in an assignment",
                    f,
                    lineno,
                    col,
                    f"value of '{key}' is a literal secret; use a reference (env:NAME or file:/path)",
                    fingerprint("secret-assignment", f.rel, key.lower()),
                ),
                value,
            )
    for keyword, value, col in device_config_secret(f, line):
        yield (
            _finding(
                "config-secret",
                "secret in a device configuration",
                f,
                lineno,
                col,
                f"'{keyword}' is followed by a literal secret; render it from a reference",
                fingerprint("config-secret", f.rel, keyword),
                "medium",
            ),
            value,
        )


def _entropy_candidates(line: str) -> Iterator[tuple[str, int]]:
    spans = [(m.group(2), m.start(2)) for m in _QUOTED_VALUE.finditer(line)]
    if (m := _VALUE_AFTER.search(line)) is not None:
        spans.append((m.group(1), m.start(1)))
    for text, start in spans:
        for tok in _CANDIDATE.finditer(text):
            yield tok.group(0), start + tok.start() + 1


def scan_secrets(files: list[RepoFile], opts: EntropyOptions) -> list[Finding]:
    return [finding for f in files for finding in scan_file(f, opts)]
