"""The candidate of one FRR switch: the render output, with its secrets resolved in memory.

**Format.** A bundle of the two artifacts :func:`workers.render.network.render_device`
makes for a ``frr`` switch::

    {"frr.conf": "<integrated FRR config text>",
     "linux.json": "<workers.drivers.frr.linux_schema.LinuxSpec as JSON text>"}

``load_*_candidate(config=...)`` takes that dict or its JSON string;
``load_*_candidate(filename=...)`` takes a JSON file holding it, or a directory holding
``frr.conf`` and ``linux.json`` (the render stage's per-device artifact directory).
``linux.json`` may also be given as an already-parsed dict. A replace candidate needs
both parts; a merge candidate needs at least one. Unknown keys are errors.

**Secrets.** The artifacts carry ``{{secret:env:NAME}}`` / ``{{secret:file:/path}}``
tokens. They are resolved here with the driver's ``secret_lookup`` (a callable
``ref -> value``, or ``"env"``: environment variables and files), kept only in
memory and written only to the device (mode 0600). Every text the driver returns or
raises goes through :meth:`Candidate.mask`, which replaces each resolved value by
``****`` and masks ``password``/``secret``/``key`` arguments of FRR lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lintas.engine.errors import StageError
from lintas.engine.redact import Redactor
from lintas.workers.drivers.frr.errors import FrrCandidateError, FrrMergeError
from lintas.workers.drivers.frr.linux_schema import LinuxSpec, load_linux_spec
from lintas.workers.drivers.frr.secret_tokens import SECRET_TOKEN_RE, resolve_secrets

FRR_CONF = "frr.conf"
LINUX_JSON = "linux.json"
PARTS = (FRR_CONF, LINUX_JSON)
MASK = "****"
MAX_PART_BYTES = 4 * 1024 * 1024

SecretLookup = Callable[[str], str]
# FRR arguments that are secrets whatever the candidate says (an old value being removed
# shows up in a diff too, and is not one of the values this candidate resolved)
_FRR_SECRET_ARG = re.compile(
    r"(?i)\b(password|secret|authentication-key|message-digest-key \d+ md5|key-string)(\s+)(\S+)"
)


def env_lookup(ref: str) -> str:
    """``env:NAME`` from the environment, ``file:/path`` from a file (final newline dropped)."""
    kind, _, name = ref.partition(":")
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise FrrCandidateError(f"secret {ref}: environment variable {name} is not set")
        return value
    if kind == "file":
        try:
            return Path(name).read_text().rstrip("\r\n")
        except OSError as exc:
            raise FrrCandidateError(f"secret {ref}: cannot read the file ({exc.strerror})") from None
    raise FrrCandidateError(f"secret reference {ref!r}: expected env:NAME or file:/path")


def secret_lookup_from(option: Any) -> SecretLookup:
    """The ``secret_lookup`` optional argument: a callable, or ``"env"`` (the default)."""
    if option is None or option == "env":
        return env_lookup
    if callable(option):
        return option  # type: ignore[no-any-return]
    raise FrrCandidateError(f"optional_args secret_lookup must be a callable or 'env', not {option!r}")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A loaded candidate: texts with secrets resolved (never log them; use :meth:`mask`)."""

    frr_conf: str | None
    linux_json: str | None
    spec: LinuxSpec | None
    merge: bool
    secrets: frozenset[str] = field(default=frozenset(), repr=False)

    def __repr__(self) -> str:  # the texts hold secrets
        return f"Candidate(merge={self.merge}, parts={[p for p in PARTS if self.part(p) is not None]})"

    def part(self, name: str) -> str | None:
        return self.frr_conf if name == FRR_CONF else self.linux_json

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for p in PARTS:
            h.update(f"{p}\0{self.part(p) or ''}\0".encode())
        return h.hexdigest()[:16]

    def mask(self, text: str) -> str:
        return mask_secrets(text, self.secrets)

    def masked_text(self) -> str:
        """The candidate as get_config shows it: the bundle, secrets masked."""
        out = []
        for p in PARTS:
            text = self.part(p)
            if text is not None:
                out.append(f"!! {p}\n{self.mask(text)}")
        return "\n".join(out)


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace each secret value by ``****``, then every FRR secret argument."""
    for value in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(value, MASK)
    text = _FRR_SECRET_ARG.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return Redactor()(text)


def read_bundle(filename: str | None, config: Any) -> dict[str, Any]:
    """The bundle dict from ``config`` (dict or JSON text) or ``filename`` (JSON file or directory)."""
    if (filename is None) == (config is None):
        raise FrrCandidateError("give exactly one of filename= or config=")
    if config is not None:
        if isinstance(config, dict):
            return config
        if isinstance(config, (str, bytes)):
            try:
                data = json.loads(config)
            except json.JSONDecodeError as exc:
                raise FrrCandidateError(
                    f"config= is not a JSON bundle {{'{FRR_CONF}': ..., '{LINUX_JSON}': ...}}: {exc.msg} "
                    f"at line {exc.lineno}"
                ) from None
            if not isinstance(data, dict):
                raise FrrCandidateError("config= must be a JSON object {'frr.conf': ..., 'linux.json': ...}")
            return data
        raise FrrCandidateError(f"config= must be a dict or JSON text, not {type(config).__name__}")
    path = Path(str(filename))
    try:
        if path.is_dir():
            return {p: (path / p).read_text() for p in PARTS if (path / p).is_file()}
        if path.stat().st_size > 2 * MAX_PART_BYTES:
            raise FrrCandidateError(f"{path}: too large for a candidate")
        return read_bundle(None, path.read_text())
    except OSError as exc:
        raise FrrCandidateError(f"cannot read the candidate {path}: {exc.strerror}") from None


def load_candidate(  # noqa: C901 - one check per part of the bundle, each refusing with its own message
    bundle: dict[str, Any], lookup: SecretLookup, *, merge: bool
) -> Candidate:
    """Check the bundle, resolve its secrets and parse ``linux.json`` strictly."""
    error = FrrMergeError if merge else FrrCandidateError
    unknown = sorted(set(bundle) - set(PARTS))
    if unknown:
        raise error(f"unknown candidate parts {unknown}: expected {list(PARTS)}")
    texts: dict[str, str | None] = {}
    for p in PARTS:
        value = bundle.get(p)
        if isinstance(value, dict) and p == LINUX_JSON:
            value = json.dumps(value, indent=2, sort_keys=True) + "\n"
        if value is not None and not isinstance(value, str):
            raise error(f"candidate part {p} must be text, not {type(value).__name__}")
        if value is not None and len(value.encode()) > MAX_PART_BYTES:
            raise error(f"candidate part {p} is larger than {MAX_PART_BYTES} bytes")
        if value is not None and "\0" in value:
            raise error(f"candidate part {p} contains NUL bytes")
        texts[p] = value
    if not merge and any(texts[p] is None for p in PARTS):
        missing = [p for p in PARTS if texts[p] is None]
        raise error(f"a replace candidate needs both {list(PARTS)}; missing {missing}")
    if merge and all(texts[p] is None for p in PARTS):
        raise error(f"a merge candidate needs at least one of {list(PARTS)}")

    seen: dict[str, str] = {}

    def remember(ref: str) -> str:
        if ref not in seen:
            try:
                seen[ref] = lookup(ref)
            except (FrrCandidateError, FrrMergeError):
                raise
            except Exception as exc:  # a caller's lookup: never echo what it may have read
                raise error(f"secret {ref} could not be resolved ({type(exc).__name__})") from None
        return seen[ref]

    resolved: dict[str, str | None] = {}
    for p, text in texts.items():
        try:
            resolved[p] = resolve_secrets(text, remember) if text is not None else None
        except StageError as exc:
            if isinstance(exc, (FrrCandidateError, FrrMergeError)):
                raise
            raise error(f"{p}: {exc}") from None
    spec = None
    if resolved[LINUX_JSON] is not None:
        try:
            spec = load_linux_spec(resolved[LINUX_JSON] or "")
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:10])
            raise error(f"{LINUX_JSON} is not a valid Linux spec: {problems}") from None
    return Candidate(
        frr_conf=resolved[FRR_CONF],
        linux_json=resolved[LINUX_JSON],
        spec=spec,
        merge=merge,
        secrets=frozenset(seen.values()),
    )


def has_secret_tokens(text: str) -> bool:
    return SECRET_TOKEN_RE.search(text) is not None
