"""How deploy, verify and rollback reach switches: a nornir inventory built from the model.

The model says *which* devices and their management addresses; the worker says *how* to
log in. A device's login comes from the first credential source that serves it
(:mod:`workers.reach.credentials`: the lab's own, for exactly the switches it built, then the
operator's ``deploy.credentials`` groups); what no source serves falls back to
``deploy.username``/``key_file``/``known_hosts`` and the inventory. Connection credentials never
come from the repo in clear: the inventory's ``password`` is a secret reference resolved by
:class:`SecretResolver`, and its key files and known_hosts are paths confined the same way.

Network safety: a device whose management address lies outside
``deploy.allowed_networks`` is refused before any packet is sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nornir.core import Nornir
from nornir.core.inventory import ConnectionOptions, Defaults, Groups, Host, Hosts, Inventory
from nornir.core.plugins.connections import ConnectionPluginRegister
from nornir.plugins.runners import ThreadedRunner

from lintas.engine.settings import Settings
from lintas.workers.deploy.secrets import SecretResolver
from lintas.workers.model.model import Device, InfraModel
from lintas.workers.model.schema_inventory import InventoryDefaults
from lintas.workers.reach.allowlist import ConnectError as ConnectError
from lintas.workers.reach.allowlist import check_address as check_address
from lintas.workers.reach.credentials import Login, Target, credential_sources, find_login

NAPALM = "napalm"


@dataclass(frozen=True, slots=True)
class DeviceConn:
    name: str
    role: str
    platform: str
    hostname: str
    port: int
    username: str
    key_file: Path | None
    known_hosts: Path
    password_ref: str | None
    source: str  # the credential source that served it ("lab", "credentials:<group>"), or "settings" | "inventory"


def _inventory_chain(model: InfraModel, name: str) -> list[InventoryDefaults]:
    """The device's inventory entry, its groups (in order, depth-first) and the defaults."""
    inv = model.inventory
    chain: list[InventoryDefaults] = []
    host = inv.hosts.get(name)
    if host is not None:
        chain.append(host)
        todo = list(host.groups)
        seen: set[str] = set()
        while todo:
            g = todo.pop(0)
            if g in seen or g not in inv.groups:
                continue
            seen.add(g)
            chain.append(inv.groups[g])
            todo = list(inv.groups[g].groups) + todo
    chain.append(inv.defaults)
    return chain


def _first(chain: list[InventoryDefaults], field: str) -> Any:
    for entry in chain:
        value = getattr(entry, field, None)
        if value is not None:
            return value
    return None


def _ssh_extra(chain: list[InventoryDefaults], key: str) -> Any:
    for entry in chain:
        opts = entry.connection_options.get("ssh")
        if opts is not None and opts.extras and key in opts.extras:
            return opts.extras[key]
    return None


def _confined_path(ref: Any, what: str, device: str, resolver_dirs: list[Path]) -> Path | None:
    if ref is None:
        return None
    text = str(ref)
    path = Path(text.removeprefix("file:"))
    real = path.resolve()
    if not any(real.is_relative_to(d.resolve()) for d in resolver_dirs):
        raise ConnectError(
            f"{device}: {what} {text} is outside {', '.join(map(str, resolver_dirs))} (LINTAS_DEPLOY__SECRET_DIRS)"
        )
    return real


def _groups(model: InfraModel, name: str) -> tuple[str, ...]:
    host = model.inventory.hosts.get(name)
    return tuple(host.groups) if host is not None else ()


def device_conns(model: InfraModel, settings: Settings, names: Iterable[str]) -> dict[str, DeviceConn]:
    """Login details of every named device; raises :class:`ConnectError` naming every problem."""
    sources = credential_sources(settings)
    dirs = [settings.secrets_dir, *settings.deploy.secret_dirs]
    d = settings.deploy
    out: dict[str, DeviceConn] = {}
    problems: list[str] = []
    for name in sorted(names):
        dev: Device = model.devices[name]
        address = str(dev.mgmt_ip.ip)
        try:
            check_address(name, address, settings)
            chain = _inventory_chain(model, name)
            got = find_login(Target(name, address, "device", _groups(model, name)), sources) or Login(
                "settings" if d.key_file else "inventory"
            )
            key = (
                got.key_file
                or d.key_file
                or _confined_path(_ssh_extra(chain, "private_key"), "private_key", name, dirs)
            )
            known = (
                got.known_hosts
                or d.known_hosts
                or _confined_path(_ssh_extra(chain, "known_hosts"), "known_hosts", name, dirs)
            )
            if known is None:
                raise ConnectError(
                    f"{name}: no known_hosts file (LINTAS_DEPLOY__KNOWN_HOSTS or the inventory's "
                    "connection_options.ssh.extras.known_hosts): host keys are always checked"
                )
            user = got.username or d.username or _first(chain, "username")
            if not user:
                raise ConnectError(f"{name}: no username (inventory or LINTAS_DEPLOY__USERNAME)")
            password = None if key else (got.password_ref or _first(chain, "password"))
            if key is None and password is None:
                raise ConnectError(f"{name}: neither an SSH key nor a password reference")
            port = int(got.port or _first(chain, "port") or 22)
            out[name] = DeviceConn(
                name, dev.role, dev.platform, address, port, str(user), key, known, password, got.source
            )
        except ConnectError as exc:
            problems.append(str(exc))
    if problems:
        raise ConnectError("; ".join(problems))
    return out


def build_nornir(conns: dict[str, DeviceConn], resolver: SecretResolver, *, parallelism: int, timeout_s: int) -> Nornir:
    """A nornir with one host per device, ``platform`` = the napalm driver (``frr``, ``eos``)."""
    ConnectionPluginRegister.auto_register()
    hosts = Hosts()
    for c in conns.values():
        optional: dict[str, Any] = {"known_hosts": str(c.known_hosts), "port": c.port, "secret_lookup": resolver}
        if c.key_file is not None:
            optional["key_file"] = str(c.key_file)
        password = resolver(c.password_ref) if c.password_ref and c.key_file is None else ""
        hosts[c.name] = Host(
            name=c.name,
            hostname=c.hostname,
            username=c.username,
            password=password,
            platform=c.platform,
            port=c.port,
            data={"role": c.role},
            connection_options={NAPALM: ConnectionOptions(extras={"optional_args": optional, "timeout": timeout_s})},
        )
    return Nornir(
        inventory=Inventory(hosts=hosts, groups=Groups(), defaults=Defaults()),
        runner=ThreadedRunner(num_workers=max(1, parallelism)),
    )
