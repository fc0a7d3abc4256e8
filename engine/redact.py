"""Masks secrets before text leaves the process (logs, events, artifacts, API)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key)(\s*[:=]\s*)(\S+)"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
]
# credentials in a URL: a password in its userinfo (nats://u:p@, https://oauth2:glpat-...@) whatever the
# scheme, and over http(s) a userinfo alone too (https://ghp_...@: a token as the user name); an SSH
# user name (qemu+ssh://lintas@, ssh://git@) is not a secret and is kept
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/?#@:]*):[^\s/?#@]+@")
_HTTP_USER = re.compile(r"(?i)\b(https?://)[^\s/?#@:]+@")
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
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
        return _HTTP_USER.sub(lambda m: f"{m.group(1)}{MASK}@", text)

    def model(self, value: M) -> M:
        """A pydantic model with every string in it masked (:meth:`tree` of its JSON form)."""
        return type(value).model_validate(self.tree(value.model_dump(mode="json")))

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
