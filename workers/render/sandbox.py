"""The template sandbox: a child process that renders repo templates under hard limits.

A repo's templates are hostile code. Jinja2's sandbox stops attribute escapes, but not
a loop that never ends, a string of a gigabyte or a macro that recurses forever, and a
thread cannot be stopped from outside. So templates never run in a Lintas process:
:class:`workers.render.env.Renderer` starts this file as a script (``python -I
sandbox.py AS_MB CPU_S``) with an empty environment, an address-space cap, a CPU-time
cap and no right to write files, and kills it when the wall-clock deadline passes.

Protocol (one JSON document per line, both ways):

* stdin, first line: ``{"templates": {name: source}}``, the repo's overrides (already read
  by the parent through its confined :class:`~engine.repofs.RepoFS`); built-ins come from
  ``templates/`` beside this file;
* then one call per line: ``{"op": "render", "template": name, "target": label,
  "context": {...}, "max_chars": n}`` or ``{"op": "compile", "template": name, ...}``;
* stdout, one line per call: ``{"ok": true, "text": "..."}`` or ``{"ok": false,
  "file": ..., "line": n | null, "message": ...}``.

The output limit is enforced while rendering (chunk by chunk), not after.

This module imports only the standard library and Jinja2: it must run without Lintas.
"""

from __future__ import annotations

import json
import re
import string
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, Template, TemplateNotFound, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

BUILTIN_DIR = Path(__file__).resolve().parent / "templates"
REPO_TEMPLATES = "templates"
MAX_OUTPUT_CHARS = 4 * 1024 * 1024  # one artifact
MAX_SEQUENCE = 1_000_000  # longest string/list a template may build by repetition
MAX_EXPONENT_BITS = 4096  # largest integer a template may build with **
MAX_WIDTH = 10_000  # widest field of a %-format or str.format
_WIDTH = re.compile(r"%[-#0 +]*(\d+)")
_STAR = re.compile(r"%[-#0 +]*\*")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]{4,}>")
_SPEC_WIDTH = re.compile(r"^(?:.?[<>=^])?[-+ ]?#?0?(\d+)")


class OutputTooLarge(Exception):
    pass


class _Loader(BaseLoader):
    """The repo's ``templates/<name>`` first, then the built-in ``<name>``."""

    def __init__(self, repo: Mapping[str, str]) -> None:
        self._repo = repo

    def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        if ".." in template.split("/") or template.startswith("/"):
            raise TemplateNotFound(template)
        if template in self._repo:
            return self._repo[template], f"{REPO_TEMPLATES}/{template}", lambda: True
        path = BUILTIN_DIR / template
        if path.is_file():
            return path.read_text(), f"builtin:{template}", lambda: True
        raise TemplateNotFound(template)


def _ip(value: Any) -> str:
    import ipaddress

    return str(ipaddress.ip_interface(str(value)).ip)


def _prefixlen(value: Any) -> int:
    import ipaddress

    return ipaddress.ip_interface(str(value)).network.prefixlen


def _network(value: Any) -> str:
    import ipaddress

    return str(ipaddress.ip_interface(str(value)).network)


FILTERS: Mapping[str, Callable[..., Any]] = {"ip": _ip, "prefixlen": _prefixlen, "network": _network}


def _check_format(fmt: str) -> None:
    for _text, _field, spec, _conv in string.Formatter().parse(fmt):
        if spec and "{" in spec:
            raise SecurityError("nested replacement fields in a format spec are not allowed")
        if spec and (m := _SPEC_WIDTH.match(spec)) and int(m.group(1)) > MAX_WIDTH:
            raise SecurityError(f"format width {m.group(1)} too large (limit {MAX_WIDTH})")


def _check_percent(fmt: str) -> None:
    if _STAR.search(fmt):
        raise SecurityError("'*' widths in %-formats are not allowed")
    if any(int(w) > MAX_WIDTH for w in _WIDTH.findall(fmt)):
        raise SecurityError("format width too large")


def _format_filter(value: Any, *args: Any, **kwargs: Any) -> str:
    """Jinja's ``|format`` (``value % args``), with the same width checks as the ``%`` operator."""
    from jinja2.filters import do_format

    _check_percent(str(value))
    return do_format(value, *args, **kwargs)


def _finalize(value: Any) -> Any:
    """Every ``{{ expression }}``: refuse text that carries a memory address (``<generator object
    ... at 0x7f...>`` from a forgotten ``|list``): it differs from one render to the next."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    if _ADDRESS.search(text):
        raise SecurityError(
            f"{type(value).__name__} has no stable text (it shows a memory address); "
            "turn it into a list or a string first (|list, |join)"
        )
    return value


class SandboxEnv(ImmutableSandboxedEnvironment):
    """The sandbox stops attribute escapes; this also refuses arithmetic and formatting that
    would exhaust memory or CPU (``'a' * 10**10``, ``9 ** 99999999``, ``'%999999999d' % 1``,
    ``'{:>999999999}'.format(1)``) before it allocates. The process limits are the backstop."""

    intercepted_binops = frozenset(["*", "**", "%"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_SEQUENCE:
                    raise SecurityError(f"repetition would build {len(seq) * n} items (limit {MAX_SEQUENCE})")
        elif operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left) > 1
                and (right * max(abs(left).bit_length(), 1) > MAX_EXPONENT_BITS)
            ):
                raise SecurityError(f"power {left} ** {right} is too large")
        elif operator == "%" and isinstance(left, str):
            _check_percent(left)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format(fmt)
            return wrapped(*args, **kwargs)

        return checked


def make_env(repo_templates: Mapping[str, str]) -> SandboxEnv:
    env = SandboxEnv(
        loader=_Loader(repo_templates),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=400,
        finalize=_finalize,
    )
    env.filters.update(FILTERS)
    env.filters["format"] = _format_filter
    # equal input, equal output: nothing random in a render
    for name in ("random", "shuffle"):
        env.filters.pop(name, None)
    env.globals.pop("lipsum", None)
    return env


def forget_state(env: SandboxEnv) -> None:
    """Drop what one render may have left for the next: the modules of imported templates are
    cached on their Template (with any ``namespace()`` a template changed in them)."""
    for tpl in list(env.cache.values()) if env.cache is not None else []:
        tpl._module = None  # noqa: SLF001 - jinja2 keeps the imported module here


def _line_of(exc: BaseException, tpl: Template | None) -> int | None:
    """The template line, from the traceback (Jinja maps frames to template lines)."""
    line = None
    tb = exc.__traceback__
    name = tpl.filename if tpl is not None else None
    while tb is not None:
        fn = tb.tb_frame.f_code.co_filename
        if (name is not None and fn == name) or "<template>" in fn:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _kind(exc: BaseException) -> str:
    if isinstance(exc, SecurityError):
        return "sandbox violation"
    if isinstance(exc, RecursionError):
        return "recursion too deep"
    if isinstance(exc, MemoryError):
        return "memory limit exceeded"
    return type(exc).__name__


def _chunks(tpl: Template, context: Mapping[str, Any]) -> Iterator[str]:
    return iter(tpl.generate(**context))


def handle(env: SandboxEnv, call: Mapping[str, Any]) -> dict[str, Any]:
    """One call: render (or only compile) a template, as a protocol reply."""
    name = str(call.get("template"))
    target = str(call.get("target", ""))
    tpl: Template | None = None
    try:
        tpl = env.get_template(name)
        if call.get("op") == "compile":
            return {"ok": True, "text": ""}
        limit = int(call.get("max_chars") or MAX_OUTPUT_CHARS)
        parts: list[str] = []
        total = 0
        for chunk in _chunks(tpl, call.get("context") or {}):
            total += len(chunk)
            if total > limit:
                raise OutputTooLarge(f"output too large (over {limit} chars)")
            parts.append(chunk)
        text = "".join(parts)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return {
                "ok": False,
                "file": _file(tpl, name),
                "line": None,
                "message": f"output is not valid UTF-8 text ({exc.reason}) while rendering {target}",
            }
        return {"ok": True, "text": text}
    except TemplateSyntaxError as exc:
        return {
            "ok": False,
            "file": exc.filename or exc.name or name,
            "line": exc.lineno,
            "message": f"template syntax error: {exc.message}",
        }
    except TemplateNotFound as exc:
        if tpl is not None:  # an include or import of the template
            return {
                "ok": False,
                "file": _file(tpl, name),
                "line": _line_of(exc, tpl),
                "message": f"template not found: {exc.name} (while rendering {target})",
            }
        return {"ok": False, "file": name, "line": None, "message": f"template not found: {exc.name}"}
    except OutputTooLarge as exc:
        return {"ok": False, "file": _file(tpl, name), "line": None, "message": f"{exc} while rendering {target}"}
    except (MemoryError, RecursionError) as exc:
        # unwind first: the frames of the failure hold the memory
        return {
            "ok": False,
            "file": _file(tpl, name),
            "line": _line_of(exc, tpl),
            "message": f"{_kind(exc)} while rendering {target}",
        }
    except Exception as exc:  # every template error becomes a located reply, never a crash
        return {
            "ok": False,
            "file": _file(tpl, name),
            "line": _line_of(exc, tpl),
            "message": f"{_kind(exc)} while rendering {target}: {str(exc)[:500]}",
        }


def _file(tpl: Template | None, name: str) -> str:
    return (tpl.filename if tpl is not None else None) or name


def _limit(memory_mb: int, cpu_s: int) -> None:
    import resource

    mem = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # no file is written from here
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main() -> None:
    _limit(int(sys.argv[1]), int(sys.argv[2]))
    sys.setrecursionlimit(2000)
    stdin, stdout = sys.stdin, sys.stdout
    header = json.loads(stdin.readline() or "{}")
    env = make_env(header.get("templates") or {})
    for raw in stdin:
        try:
            reply = handle(env, json.loads(raw))
            forget_state(env)  # every target renders as if it were the only one
            line = json.dumps(reply)
        except MemoryError:
            line = json.dumps({"ok": False, "file": "?", "line": None, "message": "memory limit exceeded"})
        stdout.write(line + "\n")
        stdout.flush()


if __name__ == "__main__":
    main()
