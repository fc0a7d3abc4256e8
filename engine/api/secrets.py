"""Secret references (``env:NAME``, ``file:/path``), resolved at use; values never logged."""

from __future__ import annotations

import os
from pathlib import Path

from lintas.engine.errors import ConfigError


def resolve_secret(ref: str) -> bytes:
    """The secret's bytes. Errors name the reference, never the value."""
    scheme, _, target = ref.partition(":")
    if scheme == "env":
        value = os.environ.get(target)
        if not value:
            raise ConfigError(f"secret reference {ref!r}: environment variable is unset or empty")
        return value.encode()
    if scheme == "file":
        try:
            data = Path(target).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"secret reference {ref!r}: cannot read file ({exc.strerror})") from None
        if not data:
            raise ConfigError(f"secret reference {ref!r}: file is empty")
        return data
    raise ConfigError(f"secret reference {ref!r}: use env:NAME or file:/path")
