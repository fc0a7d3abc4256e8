"""Findings and the options that decide which of them block a run."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["low", "medium", "high"]
Tool = Literal["bandit", "secrets"]
RANK: dict[str, int] = {"low": 1, "medium": 2, "high": 3}
_QUOTED = re.compile(r"""(['"]).*?\1""")


class EntropyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    min_length: int = Field(20, ge=8, le=1024)
    base64: float = Field(4.5, gt=0, le=8)  # bits per character
    hex: float = Field(3.5, gt=0, le=4)


class SecscanOptions(BaseModel):
    """``with:`` of the secscan stage in ``.lintas/pipeline.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    severity: Level = "medium"  # bandit findings at or above both thresholds fail the stage
    confidence: Level = "medium"
    honor_nosec: bool = False  # `# nosec` comments are ignored unless this is true: use the allowlist
    unparsable: Literal["warn", "fail"] = "warn"  # a .py file bandit cannot parse (e.g. Python 2)
    allowlist: str = ".lintas/secscan-allowlist.yaml"
    entropy: EntropyOptions = EntropyOptions()
    max_file_bytes: int = Field(2 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)


@dataclass(frozen=True)
class Finding:
    """One finding. ``message`` is written by Lintas and never contains the secret."""

    tool: Tool
    rule: str  # B602, aws-access-key-id, ...
    name: str  # subprocess_popen_with_shell_equals_true, "AWS access key id", ...
    file: str
    line: int
    severity: Level
    confidence: Level
    message: str
    fingerprint: str
    column: int | None = None
    cwe: int | None = None
    help_uri: str | None = None
    blocking: bool = False
    suppressed: str | None = None  # the allowlist entry's reason

    def suppress(self, reason: str) -> Finding:
        return replace(self, suppressed=reason, blocking=False)

    def as_json(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "rule": self.rule,
            "file": self.file,
            "line": self.line,
            "severity": self.severity,
            "confidence": self.confidence,
            "message": self.message,
            "blocking": self.blocking,
        }

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: [{self.tool} {self.rule}] {self.message}"


def at_least(value: str, threshold: str) -> bool:
    return RANK[value.lower()] >= RANK[threshold.lower()]


def fingerprint(*parts: str) -> str:
    """A stable id for allowlisting. Truncated, and salted with the rule, so it is no handle on
    a high-entropy secret; never derived from a low-entropy value (a password)."""
    return hashlib.sha256("\0".join(("lintas-secscan/1", *parts)).encode()).hexdigest()[:16]


def mask_quoted(text: str) -> str:
    """bandit quotes the literal it found (B105: "Possible hardcoded password: 'x'"): mask it."""
    return _QUOTED.sub("'****'", text)
