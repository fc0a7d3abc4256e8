"""The parent side of template rendering: repo templates in, text out, through the sandbox child.

Hostile-repo rules:
- templates never run in a Lintas process: :class:`Renderer` sends each call to a child
  process (:mod:`workers.render.sandbox`) with address-space, CPU-time and output limits,
  killed when the deadline passes; whatever a template does, the worker survives;
- inside the child: Jinja2's ``ImmutableSandboxedEnvironment`` (no dunder access, no
  unsafe calls) with ``StrictUndefined`` (a missing variable is an error), and arithmetic
  and formatting that would exhaust memory are refused before they allocate;
- templates come from the built-ins in ``workers/render/templates``, overridable by the
  repo's ``templates/`` directory (same relative name), read here through :class:`RepoFS`
  so paths are confined to the repo root and symlinks leaving it are refused;
- contexts are plain JSON data: a template sees values, never Lintas objects.

Every failure (syntax, undefined variable, sandbox violation, recursion, memory, CPU,
timeout, output size) becomes a :class:`RenderError` whose diagnostic names the template,
the line where known, and the target.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import InputError
from lintas.engine.repofs import RepoFS
from lintas.workers.model.plain import plain
from lintas.workers.render import sandbox

BUILTIN_DIR = sandbox.BUILTIN_DIR
REPO_TEMPLATES = sandbox.REPO_TEMPLATES
MAX_OUTPUT_CHARS = sandbox.MAX_OUTPUT_CHARS
MAX_TEMPLATE_BYTES = 256 * 1024
MAX_TEMPLATES_TOTAL = 4 * 1024 * 1024
_SANDBOX = str(Path(sandbox.__file__).resolve())


class RenderError(InputError):
    """A template that does not render: names the template, line and target."""


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """Limits of one renderer's child process (one render job)."""

    memory_mb: int = 256  # address space of the child
    cpu_s: int = 4  # CPU time of the child, over the whole job (the 1,000-leaf fabric needs 0.44 s)
    timeout_s: float = 300.0  # wall clock, from the renderer's first call
    max_output_chars: int = MAX_OUTPUT_CHARS  # one artifact


@dataclass(frozen=True, slots=True)
class TemplateCall:
    """One template to render for one target, with a plain-data (JSON) context."""

    template: str
    target: str
    context: Mapping[str, Any] = field(default_factory=dict)


def read_repo_templates(root: Path) -> dict[str, str]:
    """The repo's template overrides, ``{name under templates/: source}``, read confined and bounded."""
    fs = RepoFS(root, max_file_bytes=MAX_TEMPLATE_BYTES)
    if not fs.exists(REPO_TEMPLATES):
        return {}
    out: dict[str, str] = {}
    total = 0
    for rel in sorted(fs.glob(f"{REPO_TEMPLATES}/**")):
        if rel.lower().endswith((".md", ".txt")):
            continue
        data = fs.read_bytes(rel)
        total += len(data)
        if total > MAX_TEMPLATES_TOTAL:
            raise RenderError([Diagnostic(file=rel, message=f"templates/ holds more than {MAX_TEMPLATES_TOTAL} bytes")])
        try:
            out[rel[len(REPO_TEMPLATES) + 1 :]] = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RenderError([Diagnostic(file=rel, message=f"template is not UTF-8 text: {exc.reason}")]) from exc
    return out


def digest_files(files: Mapping[str, bytes]) -> str:
    """One digest of named contents, unambiguous whatever bytes they hold (each name and content
    is hashed on its own, so no arrangement of NULs or separators makes two sets collide)."""
    h = hashlib.blake2b(digest_size=20)
    for name, data in sorted(files.items()):
        h.update(hashlib.blake2b(name.encode("utf-8", "surrogatepass")).digest())
        h.update(hashlib.blake2b(data).digest())
    return h.hexdigest()


def _builtin_digest() -> str:
    return digest_files(
        {str(p.relative_to(BUILTIN_DIR)): p.read_bytes() for p in BUILTIN_DIR.rglob("*") if p.is_file()}
    )


def _spawn(limits: RenderLimits) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own script, empty environment
        [sys.executable, "-I", _SANDBOX, str(limits.memory_mb), str(limits.cpu_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={},
        close_fds=True,
    )


class Spares:
    """One sandbox child started ahead of the next job, so that its start-up (the interpreter
    and Jinja2, about 60 ms) happens between jobs rather than in them. Every job still gets a
    fresh child: a spare is taken once and never returned. A spare left over is reaped when
    this object goes away or the process exits."""

    def __init__(self, limits: RenderLimits | None = None) -> None:
        self.limits = limits or RenderLimits()
        self._box: list[subprocess.Popen[bytes]] = []  # at most one spare
        self._lock = threading.Lock()
        weakref.finalize(self, _reap_all, self._box)

    def take(self, limits: RenderLimits) -> subprocess.Popen[bytes]:
        with self._lock:
            spare = self._box.pop() if self._box else None
        if (
            spare is not None
            and spare.poll() is None
            and (limits.memory_mb, limits.cpu_s) == (self.limits.memory_mb, self.limits.cpu_s)
        ):
            return spare
        if spare is not None:
            _reap(spare)
        return _spawn(limits)

    def refill(self) -> None:
        with self._lock:
            if self._box and self._box[0].poll() is not None:
                _reap(self._box.pop())
            if not self._box:
                self._box.append(_spawn(self.limits))

    def close(self) -> None:
        with self._lock:
            _reap_all(self._box)


def _reap_all(box: list[subprocess.Popen[bytes]]) -> None:
    while box:
        _reap(box.pop())


class _Child:
    """One sandbox process, request/response over pipes, killed at the deadline."""

    def __init__(self, templates: Mapping[str, str], limits: RenderLimits, spares: Spares | None = None) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.timeout_s
        self.proc = spares.take(limits) if spares is not None else _spawn(limits)
        self._buf = bytearray()
        self._max_line = 12 * limits.max_output_chars + 4096  # JSON escaping of the largest artifact
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the first call reports a dead child
            self._send({"templates": dict(templates)})

    def _send(self, doc: Mapping[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(doc, default=plain).encode() + b"\n")
        self.proc.stdin.flush()

    def call(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Send one call, return its reply; raises _Died when the child is gone or over a limit."""
        try:
            self._send(doc)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _Died(self._death()) from exc
        line = self._readline()
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _readline(self) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        end = self._buf.find(b"\n")
        while end < 0:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise _Died(f"timed out after {self.limits.timeout_s:g} s")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise _Died(self._death())
            at = chunk.find(b"\n")  # only the new bytes are searched: linear in the line's size
            end = len(self._buf) + at if at >= 0 else -1
            self._buf += chunk
            if end < 0 and len(self._buf) > self._max_line:
                self.kill()
                raise _Died(f"output too large (over {self.limits.max_output_chars} chars)")
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        return line

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return "renderer process stopped answering"
        if code in (-signal.SIGXCPU, -signal.SIGKILL):
            return f"CPU time limit exceeded ({self.limits.cpu_s} s)"
        return f"renderer process died (exit status {code}; memory limit {self.limits.memory_mb} MB)"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        _reap(self.proc)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


class _Died(Exception):
    pass


class Renderer:
    """Renders templates of one repo (or the built-ins alone) for one job, in a sandbox child.

    The child starts at the first call and lives until :meth:`close` (or until the
    renderer is garbage-collected); the limits apply to that whole life.
    """

    BUILTIN_DIGEST = _builtin_digest()

    def __init__(
        self, repo_root: Path | None = None, *, limits: RenderLimits | None = None, spares: Spares | None = None
    ) -> None:
        self._root = repo_root
        self.limits = limits or RenderLimits()
        self._spares = spares
        self._templates: dict[str, str] | None = None
        self._child: _Child | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def repo_templates(self) -> dict[str, str]:
        if self._templates is None:
            self._templates = read_repo_templates(self._root) if self._root is not None else {}
        return self._templates

    def digest(self) -> str:
        """Identifies the template set (repo overrides and built-ins): equal digest, equal templates."""
        repo = digest_files({n: t.encode("utf-8", "surrogatepass") for n, t in self.repo_templates.items()})
        return f"{self.BUILTIN_DIGEST}:{repo}"

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._child = None

    def _session(self) -> _Child:
        if self._child is None or not self._child.alive():
            if self._child is not None and self._finalizer is not None:
                self._finalizer()
            child = _Child(self.repo_templates, self.limits, self._spares)
            self._finalizer = weakref.finalize(self, _reap, child.proc)
            self._child = child
        return self._child

    def _call(self, op: str, call: TemplateCall) -> dict[str, Any]:
        doc = {
            "op": op,
            "template": call.template,
            "target": call.target,
            "context": call.context,
            "max_chars": self.limits.max_output_chars,
        }
        try:
            return self._session().call(doc)
        except _Died as exc:
            self.close()
            return {
                "ok": False,
                "file": self._file_of(call.template),
                "line": None,
                "message": f"{exc} while rendering {call.target}",
                "fatal": True,
            }

    def _file_of(self, template: str) -> str:
        return f"{REPO_TEMPLATES}/{template}" if template in self.repo_templates else f"builtin:{template}"

    def template(self, name: str, target: str = "") -> None:
        """Check that ``name`` exists and compiles (raises RenderError naming file and line)."""
        reply = self._call("compile", TemplateCall(name, target))
        if not reply.get("ok"):
            raise RenderError([_diagnostic(reply, target)])

    def render(self, name: str, *, target: str, **context: Any) -> str:
        return self.render_many([TemplateCall(name, target, context)])[0]

    def render_many(self, calls: Sequence[TemplateCall]) -> list[str]:
        """The text of every call, in order; every failure reported together as one RenderError.
        A failure that kills the child (CPU, deadline, output) stops the job there."""
        out: list[str] = []
        errors: list[Diagnostic] = []
        for call in calls:
            reply = self._call("render", call)
            if reply.get("ok"):
                out.append(str(reply.get("text", "")))
                continue
            errors.append(_diagnostic(reply, call.target))
            out.append("")
            if reply.get("fatal"):
                break
        if errors:
            raise RenderError(errors, summary=f"{len(errors)} template error(s)")
        return out


def _diagnostic(reply: Mapping[str, Any], target: str) -> Diagnostic:
    line = reply.get("line")
    return Diagnostic(
        file=str(reply.get("file") or "?"),
        line=line if isinstance(line, int) else None,
        path=target,
        message=str(reply.get("message") or "template error"),
    )
