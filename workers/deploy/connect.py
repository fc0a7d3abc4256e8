"""How deploy, verify and rollback reach switches: a nornir inventory built from the model.

The model says *which* devices and their management addresses; the worker's settings
say *how* to log in. Connection credentials never come from the repo in clear: the
inventory's ``password`` is a secret reference resolved by :class:`SecretResolver`,
key files and known_hosts are paths confined the same way, and when a lab is up under
``LINTAS_HOME`` (``deploy.use_lab``) its key pair and known_hosts are used.

Network safety: a device whose management address lies outside
``deploy.allowed_networks`` is refused before any packet is sent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nornir.core import Nornir
from nornir.core.inventory import ConnectionOptions, Defaults, Groups, Host, Hosts, Inventory
from nornir.core.plugins.connections import ConnectionPluginRegister
from nornir.plugins.runners import ThreadedRunner

from lintas.engine.errors import LintasError
from lintas.engine.settings import Settings
from lintas.workers.deploy.secrets import SecretResolver
from lintas.workers.model.model import Device, InfraModel
from lintas.workers.model.schema_inventory import InventoryDefaults

NAPALM = "napalm"


class ConnectError(LintasError):
    """A device cannot be connected to under the operator's rules (no packet was sent)."""


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
    source: str  # "lab" | "settings" | "inventory": where the login came from (for messages)


def lab_in_use(settings: Settings) -> bool:
    """A lab is up under LINTAS_HOME and deploys may take its logins (``deploy.use_lab``)."""
    if not settings.deploy.use_lab:
        return False
    from lintas.workers.lab.paths import LabPaths  # the lab is optional: imported only when used

    return LabPaths(settings.home).state_file.exists()


def _lab_logins(settings: Settings) -> dict[str, tuple[str, Path, Path]]:
    """``{device: (username, key_file, known_hosts)}`` of the lab up under LINTAS_HOME, if any."""
    if not lab_in_use(settings):
        return {}
    from lintas.workers.lab.lab import lab_facts

    return {n: (f.username, f.key_file, f.known_hosts) for n, f in lab_facts(settings).items()}


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
        raise ConnectError(f"{device}: {what} {text} is outside {', '.join(map(str, resolver_dirs))} "
                           "(LINTAS_DEPLOY__SECRET_DIRS)")
    return real


def check_address(device: str, address: str, settings: Settings) -> None:
    ip = ipaddress.ip_address(address)
    nets = [ipaddress.ip_network(n, strict=False) for n in settings.deploy.allowed_networks]
    if not any(ip in n for n in nets):
        raise ConnectError(f"{device}: management address {address} is outside the allowed networks "
                           f"{', '.join(map(str, nets))} (LINTAS_DEPLOY__ALLOWED_NETWORKS): refused")


def device_conns(model: InfraModel, settings: Settings, names: Iterable[str]) -> dict[str, DeviceConn]:
    """Login details of every named device; raises :class:`ConnectError` naming every problem."""
    lab = _lab_logins(settings)
    dirs = [settings.secrets_dir, *settings.deploy.secret_dirs]
    out: dict[str, DeviceConn] = {}
    problems: list[str] = []
    for name in sorted(names):
        dev: Device = model.devices[name]
        address = str(dev.mgmt_ip.ip)
        try:
            check_address(name, address, settings)
            chain = _inventory_chain(model, name)
            if name in lab:
                user, lab_key, lab_known = lab[name]
                out[name] = DeviceConn(name, dev.role, dev.platform, address, 22, user, lab_key, lab_known, None,
                                       "lab")
                continue
            d = settings.deploy
            key = d.key_file or _confined_path(_ssh_extra(chain, "private_key"), "private_key", name, dirs)
            known = d.known_hosts or _confined_path(_ssh_extra(chain, "known_hosts"), "known_hosts", name, dirs)
            if known is None:
                raise ConnectError(f"{name}: no known_hosts file (LINTAS_DEPLOY__KNOWN_HOSTS or the inventory's "
                                   "connection_options.ssh.extras.known_hosts): host keys are always checked")
            user = d.username or _first(chain, "username")
            if not user:
                raise ConnectError(f"{name}: no username (inventory or LINTAS_DEPLOY__USERNAME)")
            password = None if key else _first(chain, "password")
            if key is None and password is None:
                raise ConnectError(f"{name}: neither an SSH key nor a password reference")
            port = int(_first(chain, "port") or 22)
            out[name] = DeviceConn(name, dev.role, dev.platform, address, port, str(user), key, known, password,
                                   "settings" if d.key_file else "inventory")
        except ConnectError as exc:
            problems.append(str(exc))
    if problems:
        raise ConnectError("; ".join(problems))
    return out


def build_nornir(conns: dict[str, DeviceConn], resolver: SecretResolver, *, parallelism: int,
                 timeout_s: int) -> Nornir:
    """A nornir with one host per device, ``platform`` = the napalm driver (``frr``, ``eos``)."""
    ConnectionPluginRegister.auto_register()
    hosts = Hosts()
    for c in conns.values():
        optional: dict[str, Any] = {"known_hosts": str(c.known_hosts), "port": c.port, "secret_lookup": resolver}
        if c.key_file is not None:
            optional["key_file"] = str(c.key_file)
        password = resolver(c.password_ref) if c.password_ref and c.key_file is None else ""
        hosts[c.name] = Host(
            name=c.name, hostname=c.hostname, username=c.username, password=password, platform=c.platform,
            port=c.port, data={"role": c.role},
            connection_options={NAPALM: ConnectionOptions(extras={"optional_args": optional, "timeout": timeout_s})},
        )
    return Nornir(inventory=Inventory(hosts=hosts, groups=Groups(), defaults=Defaults()),
                  runner=ThreadedRunner(num_workers=max(1, parallelism)))
