"""Where a target's login comes from: typed credential sources, tried in order.

A :class:`CredentialSource` answers :meth:`~CredentialSource.login` for a :class:`Target` (name,
management address, kind, inventory groups) with a :class:`Login` (user, key file, known_hosts,
password *reference*) or ``None``. The sources, in order:

1. **registered sources**: files under ``$LINTAS_HOME/credentials.d/`` that a tool writes for
   the targets it built. ``lintas lab up`` writes ``lab.json`` (consulted while
   ``deploy.use_lab``); a registered source serves only the targets it lists, matched by name
   **and** management address **and** kind, never as a default;
2. **configured sources**: the operator's ``deploy.credentials`` groups (``LINTAS_DEPLOY__CREDENTIALS``),
   the first group that matches.

A twin (``lintas twin up``, issue 18) registers ``twin-<name>.json``: its targets carry the twin's
management namespace and are served only to a :class:`Target` reached through that namespace
(:func:`twin_sources`); they are never part of the default chain.

What no source serves falls back to ``deploy.username``/``key_file``/``known_hosts`` and the
inventory (:mod:`workers.deploy.connect`). Which source served a target is logged; a secret never is
(a :class:`Login` holds paths and references only).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lintas.engine.settings import CredentialGroup, Settings
from lintas.workers.reach.allowlist import ConnectError

log = logging.getLogger(__name__)

TargetKind = Literal["device", "host"]
REGISTRY_DIR = "credentials.d"
LAB_SOURCE = "lab"
TWIN_SOURCE_PREFIX = "twin-"


@dataclass(frozen=True, slots=True)
class Target:
    """What a login is asked for: a switch (``device``) or a hypervisor host (``host``)."""

    name: str
    address: str  # management address, already checked against the allow-list
    kind: TargetKind
    groups: tuple[str, ...] = ()  # inventory groups (switches)
    namespace: str | None = None  # reached from inside this network namespace (a twin's management)


@dataclass(frozen=True, slots=True)
class Login:
    """How to log in to one target. Paths and references only: no secret is ever held here."""

    source: str  # which source served it: "lab", "credentials:<group>", ...
    username: str | None = None
    key_file: Path | None = None
    known_hosts: Path | None = None
    password_ref: str | None = None  # env:NAME / file:/path, resolved when connecting
    port: int | None = None


class CredentialSource(Protocol):
    @property
    def name(self) -> str: ...

    def login(self, target: Target) -> Login | None:
        """The login of ``target``, or ``None`` when this source does not serve it."""
        ...


# -- registered sources (a tool's own targets, e.g. the lab's) --------------------------------------


class RegisteredTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: TargetKind
    address: str
    username: str
    key_file: Path
    known_hosts: Path
    port: int = Field(22, ge=1, le=65535)
    namespace: str | None = None  # a twin's management namespace: served only to targets reached through it


class Registration(BaseModel):
    """The file a tool writes under ``$LINTAS_HOME/credentials.d/<source>.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")
    targets: list[RegisteredTarget]


def registration_file(home: Path, source: str) -> Path:
    return home / REGISTRY_DIR / f"{source}.json"


def write_registration(home: Path, registration: Registration) -> Path:
    """Write (atomically, owner-only) the registration of ``registration.source``."""
    path = registration_file(home, registration.source)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(registration.model_dump_json(indent=2) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def remove_registration(home: Path, source: str) -> bool:
    path = registration_file(home, source)
    if path.exists():
        path.unlink()
        return True
    return False


@dataclass(frozen=True, slots=True)
class RegisteredSource:
    """The targets a tool registered: served only on an exact name + address + kind match."""

    name: str
    targets: dict[str, RegisteredTarget]

    @classmethod
    def load(cls, path: Path) -> RegisteredSource:
        try:
            reg = Registration.model_validate_json(path.read_text())
        except (OSError, ValidationError) as exc:
            raise ConnectError(f"credential source {path}: unreadable ({type(exc).__name__})") from None
        if reg.source != path.stem:
            raise ConnectError(f"credential source {path}: registers {reg.source!r}, not {path.stem!r}")
        return cls(reg.source, {t.name: t for t in reg.targets})

    def login(self, target: Target) -> Login | None:
        t = self.targets.get(target.name)
        if t is None or t.kind != target.kind or not _same_address(t.address, target.address):
            return None
        if t.namespace != target.namespace:  # a twin's login never serves production, nor the reverse
            return None
        return Login(self.name, t.username, t.key_file, t.known_hosts, None, t.port)


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


# -- configured sources (the operator's settings) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfiguredSource:
    """One ``deploy.credentials`` group."""

    group: CredentialGroup

    @property
    def name(self) -> str:
        return f"credentials:{self.group.name}"

    def matches(self, target: Target) -> bool:
        g = self.group
        if g.targets and not any(fnmatch.fnmatchcase(target.name, p) for p in g.targets):
            return False
        if g.groups and not set(g.groups) & set(target.groups):
            return False
        if g.networks:
            ip = ipaddress.ip_address(target.address)
            if not any(ip in ipaddress.ip_network(n, strict=False) for n in g.networks):
                return False
        return True

    def login(self, target: Target) -> Login | None:
        if not self.matches(target):
            return None
        g = self.group
        return Login(self.name, g.username, g.key_file, g.known_hosts, g.password)


# -- the chain ---------------------------------------------------------------------------------------


def credential_sources(settings: Settings) -> list[CredentialSource]:
    """The sources of ``settings``, in the order they are asked."""
    out: list[CredentialSource] = []
    lab = registration_file(settings.home, LAB_SOURCE)
    if settings.deploy.use_lab and lab.exists():
        out.append(RegisteredSource.load(lab))
    out += [ConfiguredSource(g) for g in settings.deploy.credentials]
    return out


def twin_source_name(twin: str) -> str:
    """The registered source of twin ``twin``: ``credentials.d/twin-<name>.json``."""
    return f"{TWIN_SOURCE_PREFIX}{twin}"


def twin_sources(settings: Settings, twin: str) -> list[CredentialSource]:
    """The sources for the targets of twin ``twin``: its own registration only (never the operator's
    groups nor the production lab's: a twin's target has the production address but not its login)."""
    path = registration_file(settings.home, twin_source_name(twin))
    if not path.exists():
        raise ConnectError(f"no twin {twin!r} is registered for LINTAS_HOME={settings.home}")
    return [RegisteredSource.load(path)]


def find_login(target: Target, sources: Sequence[CredentialSource]) -> Login | None:
    """The first source's login for ``target`` (``None``: no source serves it); logs which one served it."""
    for source in sources:
        login = source.login(target)
        if login is not None:
            where = f" in {target.namespace}" if target.namespace else ""
            log.info("%s %s (%s%s): login from %s", target.kind, target.name, target.address, where, login.source)
            return login
    log.info(
        "%s %s (%s): no credential source serves it: deploy settings / inventory",
        target.kind,
        target.name,
        target.address,
    )
    return None
