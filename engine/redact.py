"""Masks secrets before text leaves the process (logs, events, artifacts, API)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key)(\s*[:=]\s*)(\S+)"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"nats://[^:/@\s]+:[^@\s]+@"),  # credentials in a URL
]
MASK = "****"


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._literals = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for lit in self._literals:
            text = text.replace(lit, MASK)
        for pat in _PATTERNS:
            if pat.groups == 3:
                text = pat.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
            else:
                text = pat.sub(MASK, text)
        return text

    def tree(self, value: Any) -> Any:
        """``value`` with every string in it (dict keys included, lists and dicts walked) masked;
        anything else is kept as it is."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list):
            return [self.tree(v) for v in value]
        if isinstance(value, dict):
            return {self.tree(k): self.tree(v) for k, v in value.items()}
        return value
