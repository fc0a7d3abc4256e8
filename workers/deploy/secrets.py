"""Secret references from a hostile repo, resolved under the operator's rules.

An infra repo names secrets (``env:NAME``, ``file:/path``) but must not choose *which*
secrets of the worker it may read: a repo that sets a BGP password to
``file:/root/.ssh/id_rsa`` would ship that key to a device it chose. So:

* ``env:NAME`` only for names starting with one of ``deploy.secret_env_prefixes``;
* ``file:/path`` only for files inside ``$LINTAS_HOME/secrets`` or ``deploy.secret_dirs``
  (after resolving symlinks and ``..``), at most 64 KiB;
* every value resolved is remembered, and :meth:`SecretResolver.mask` removes them all
  from any text before it is logged or stored.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path

from lintas.engine.errors import LintasError
from lintas.engine.redact import Redactor
from lintas.engine.settings import Settings

MAX_SECRET_BYTES = 64 * 1024
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class SecretRefError(LintasError):
    """A reference the operator's rules do not allow, or that does not resolve."""


class SecretResolver:
    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self._prefixes = tuple(settings.deploy.secret_env_prefixes)
        self._dirs = [settings.secrets_dir, *settings.deploy.secret_dirs]
        self._environ = os.environ if environ is None else environ
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, ref: str) -> str:
        kind, _, name = ref.partition(":")
        if kind == "env":
            value = self._env(ref, name)
        elif kind == "file":
            value = self._file(ref, name)
        else:
            raise SecretRefError(f"secret reference {ref!r}: expected env:NAME or file:/path")
        with self._lock:
            self._values.add(value)
        return value

    def _env(self, ref: str, name: str) -> str:
        if not _ENV_NAME.fullmatch(name):
            raise SecretRefError(f"secret {ref}: not an environment variable name")
        if not name.startswith(self._prefixes):
            raise SecretRefError(
                f"secret {ref}: the worker only resolves environment variables starting with "
                f"{', '.join(self._prefixes) or '(none allowed)'} (LINTAS_DEPLOY__SECRET_ENV_PREFIXES)"
            )
        value = self._environ.get(name)
        if value is None:
            raise SecretRefError(f"secret {ref}: environment variable {name} is not set on the worker")
        return value

    def _file(self, ref: str, name: str) -> str:
        path = Path(name)
        if not path.is_absolute():
            raise SecretRefError(f"secret {ref}: the path must be absolute")
        real = path.resolve()
        if not any(real.is_relative_to(d.resolve()) for d in self._dirs):
            raise SecretRefError(
                f"secret {ref}: files are read only under "
                f"{', '.join(str(d) for d in self._dirs)} (LINTAS_DEPLOY__SECRET_DIRS)"
            )
        try:
            with real.open("rb") as fh:
                data = fh.read(MAX_SECRET_BYTES + 1)
        except OSError as exc:
            raise SecretRefError(f"secret {ref}: cannot read the file ({exc.strerror})") from None
        if len(data) > MAX_SECRET_BYTES:
            raise SecretRefError(f"secret {ref}: larger than {MAX_SECRET_BYTES} bytes")
        try:
            return data.decode("utf-8", errors="strict").rstrip("\r\n")
        except UnicodeDecodeError:
            raise SecretRefError(f"secret {ref}: the file is not UTF-8 text") from None

    def mask(self, text: str) -> str:
        with self._lock:
            values = list(self._values)
        return Redactor(values)(text)
