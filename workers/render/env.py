"""The one Jinja2 environment every renderer uses.

Hostile-repo rules:
- ``SandboxedEnvironment``: no attribute access to dunders, no calling unsafe methods;
- ``StrictUndefined``: a missing variable is an error, never an empty string;
- templates come from the built-ins in ``workers/render/templates``, overridable by the
  repo's ``templates/`` directory (same relative name), loaded through :class:`RepoFS`
  so paths are confined to the repo root and symlinks leaving it are refused;
- no extensions, no filesystem access from templates, output size is bounded.

A template error becomes an :class:`~engine.errors.RenderError`-style ``InputError``
whose diagnostic names the template, the line and the device.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, Template, TemplateNotFound, TemplateSyntaxError
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.diagnostics import Diagnostic
from engine.errors import InputError, RepoAccessError
from engine.repofs import RepoFS

BUILTIN_DIR = Path(__file__).resolve().parent / "templates"
REPO_TEMPLATES = "templates"
MAX_OUTPUT_CHARS = 4 * 1024 * 1024


class RenderError(InputError):
    """A template that does not render: names the template, line and target."""


class _Loader(BaseLoader):
    """Repo ``templates/<name>`` first (confined), then the built-in ``<name>``."""

    def __init__(self, repo: RepoFS | None) -> None:
        self._repo = repo

    def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        if ".." in template.split("/") or template.startswith("/"):
            raise TemplateNotFound(template)
        if self._repo is not None:
            rel = f"{REPO_TEMPLATES}/{template}"
            if self._repo.exists(rel):
                return self._repo.read_text(rel), rel, lambda: True
        path = BUILTIN_DIR / template
        if path.is_file():
            return path.read_text(), f"builtin:{template}", lambda: True
        raise TemplateNotFound(template)


def _ip(value: Any) -> str:
    return str(ipaddress.ip_interface(str(value)).ip)


def _prefixlen(value: Any) -> int:
    return ipaddress.ip_interface(str(value)).network.prefixlen


def _network(value: Any) -> str:
    return str(ipaddress.ip_interface(str(value)).network)


FILTERS: Mapping[str, Callable[..., Any]] = {"ip": _ip, "prefixlen": _prefixlen, "network": _network}


MAX_SEQUENCE = 1_000_000  # longest string/list a template may build by repetition
MAX_EXPONENT_BITS = 4096  # largest integer a template may build with **
_WIDTH = re.compile(r"%[-#0 +]*(\d+)")


class _Env(ImmutableSandboxedEnvironment):
    """The sandbox stops attribute escapes; this also stops arithmetic that would
    exhaust memory or CPU (``'a' * 10**10``, ``9 ** 99999999``, ``'%999999999d' % 1``)
    before it allocates."""

    intercepted_binops = frozenset(["*", "**", "%"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_SEQUENCE:
                    raise SecurityError(f"repetition would build {len(seq) * n} items (limit {MAX_SEQUENCE})")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and (
                right * max(abs(left).bit_length(), 1) > MAX_EXPONENT_BITS
            ):
                raise SecurityError(f"power {left} ** {right} is too large")
        elif operator == "%" and isinstance(left, str) and any(int(w) > 10_000 for w in _WIDTH.findall(left)):
            raise SecurityError("format width too large")
        return super().call_binop(context, operator, left, right)


class Renderer:
    """Compiles each template once; renders many targets."""

    def __init__(self, repo_root: Path | None = None) -> None:
        repo = RepoFS(repo_root) if repo_root is not None else None
        self.env = _Env(
            loader=_Loader(repo),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
            cache_size=400,
        )
        self.env.filters.update(FILTERS)

    def template(self, name: str, target: str = "") -> Template:
        try:
            return self.env.get_template(name)
        except TemplateSyntaxError as exc:
            raise RenderError([Diagnostic(file=exc.filename or exc.name or name, line=exc.lineno, path=target,
                                          message=f"template syntax error: {exc.message}")]) from exc
        except TemplateNotFound as exc:
            raise RenderError([Diagnostic(file=name, path=target, message=f"template not found: {exc.name}")]) from exc
        except RepoAccessError:
            raise

    def render(self, name: str, *, target: str, **context: Any) -> str:
        tpl = self.template(name, target)
        try:
            out = tpl.render(**context)
        except (UndefinedError, SecurityError, TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            raise RenderError([_diagnostic(exc, tpl, target)]) from exc
        if len(out) > MAX_OUTPUT_CHARS:
            raise RenderError([Diagnostic(file=tpl.filename or name, path=target,
                                          message=f"output too large ({len(out)} chars)")])
        return out


def _diagnostic(exc: BaseException, tpl: Template, target: str) -> Diagnostic:
    """Find the template line from the traceback (Jinja maps frames to template lines)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == tpl.filename or "<template>" in tb.tb_frame.f_code.co_filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    kind = "sandbox violation" if isinstance(exc, SecurityError) else type(exc).__name__
    return Diagnostic(file=_source(tpl), line=line, path=target, message=f"{kind} while rendering {target}: {exc}")


def _source(tpl: Template) -> str:
    """The file the user would edit: ``templates/...`` in the repo, or ``builtin:...``."""
    return tpl.filename or tpl.name or "?"
