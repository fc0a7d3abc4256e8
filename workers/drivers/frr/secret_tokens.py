"""Secret placeholders of the candidate format: ``{{secret:<ref>}}`` in the artifacts, resolved at push time.

A secret is never rendered. The model names it (``env:NAME`` or ``file:/path``); the
renderer writes the token ``{{secret:<ref>}}`` (:func:`secret_token`), e.g.
``{{secret:env:FABRIC_BGP_PASSWORD}}``, matched by :data:`SECRET_TOKEN_RE`; the driver calls
:func:`resolve_secrets` on the text it pushes, at push time only. Stored artifacts, plans and
diffs keep the token. The driver owns this format, so the renderer imports it from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lintas.engine.errors import PermanentError

_REF = r"env:[A-Za-z_][A-Za-z0-9_]*|file:[^\s{}]+"
SECRET_TOKEN_RE = re.compile(r"\{\{secret:(" + _REF + r")\}\}")
SECRET_REF_RE = re.compile(_REF)
_BAD_SECRET = re.compile(r"[\s\x00-\x1f\x7f]")


def secret_token(ref: str) -> str:
    """The placeholder written into artifacts for the secret reference ``ref``."""
    if not SECRET_REF_RE.fullmatch(ref):
        raise ValueError(f"not a secret reference: {ref!r}")
    return "{{secret:" + ref + "}}"


def resolve_secrets(text: str, lookup: Callable[[str], str]) -> str:
    """Replace every ``{{secret:<ref>}}`` by ``lookup(ref)``: for the deploy driver, at push time only.

    Values are substituted in one pass (a value is never scanned for tokens). A value
    that is empty or contains whitespace or control characters is refused, since it could
    end a config line and inject commands; errors name the reference, never the value.
    """
    values: dict[str, str] = {}

    def substitute(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref not in values:
            value = lookup(ref)
            if not value or _BAD_SECRET.search(value):
                raise PermanentError(f"secret {ref} is empty or contains whitespace/control characters")
            values[ref] = value
        return values[ref]

    leftover = re.search(r"\{\{secret:[^\n]{0,60}", SECRET_TOKEN_RE.sub("", text))
    if leftover is not None:
        raise PermanentError(f"malformed secret token {leftover.group(0)!r}")
    return SECRET_TOKEN_RE.sub(substitute, text)
