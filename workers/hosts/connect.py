"""How Lintas reaches a hypervisor host: libvirt URI, OVSDB target and SSH, all checked.

- **libvirt**: the model's URI. An SSH URI (``qemu+ssh://user@host/system``) is opened
  through libvirt's ``libssh`` transport, which takes the private key and a known_hosts
  file as URI parameters, so host keys are checked strictly against Lintas's own
  known_hosts (never ``~/.ssh``). ``openstack`` hosts are always opened read-only (the
  ``libvirt-sock-ro`` socket): Lintas cannot change a nova domain even by mistake.
- **OVSDB**: the model's ``ovs.connection`` (``tcp:``/``ssl:`` to ovsdb-server; ``unix:``
  only for a host whose libvirt URI is local).
- **SSH**: the Linux side (addresses on OVS internal ports) as the libvirt URI's user.

A twin's host (issue 18, :mod:`workers.twin.reach`) is a ``HostConn`` too: libvirt and OVSDB through
the twin host's own unix sockets, SSH run inside the twin's management namespace (``namespace``).

Credentials are server-side: the first credential source that serves the host
(:mod:`workers.reach.credentials`: the lab's own, for exactly the hosts it built, then the
operator's ``deploy.credentials`` groups), else ``deploy.username``/``key_file``/``known_hosts``.
Every address is checked against ``deploy.allowed_networks`` before anything is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from lintas.engine.settings import Settings
from lintas.workers.model import InfraModel
from lintas.workers.reach.allowlist import ConnectError, check_address, literal_address
from lintas.workers.reach.credentials import Target, credential_sources, find_login

_OVSDB_REMOTE = re.compile(r"^(tcp|ssl):(\[[0-9a-fA-F:.]+\]|[^:]+):(\d+)$")
_DROP_PARAMS = {
    "readonly",
    "keyfile",
    "known_hosts",
    "known_hosts_verify",
    "sshauth",
    "no_verify",
    "socket",
    "command",
    "netcat",
}


@dataclass(frozen=True, slots=True)
class HostConn:
    name: str
    kind: Literal["kvm", "openstack"]
    address: str  # the host's management address
    libvirt_uri: str  # what libvirt opens (may carry key/known_hosts paths: never log it whole)
    readonly: bool
    ovsdb: str
    ssh_user: str
    ssh_port: int
    key_file: Path | None
    known_hosts: Path | None
    source: str  # the credential source that served it ("lab", "credentials:<group>"), or "settings"
    namespace: str | None = None  # a twin's management namespace: SSH is run inside it (never production's)

    @property
    def libvirt_display(self) -> str:
        return self.libvirt_uri.split("?", 1)[0]


def libvirt_uri(uri: str, *, user: str | None, key_file: Path | None, known_hosts: Path | None) -> tuple[str, str, int]:
    """The URI libvirt opens, and the SSH (user, host) it implies: ``(uri, host, port)``."""
    parts = urlsplit(uri)
    driver, _, transport = parts.scheme.partition("+")
    params = [(k, v) for k, v in parse_qsl(parts.query) if k not in _DROP_PARAMS]
    host = parts.hostname or ""
    port = parts.port or 22
    if transport not in ("ssh", "libssh"):
        return (uri.split("?", 1)[0] + (("?" + urlencode(params)) if params else "")), host, port
    login = user or parts.username
    if not login:
        raise ConnectError(f"libvirt URI {uri.split('?', 1)[0]} names no user and none is configured")
    if key_file is None or known_hosts is None:
        raise ConnectError(
            "an SSH libvirt URI needs deploy.key_file and deploy.known_hosts (host keys are always checked)"
        )
    params += [
        ("keyfile", str(key_file)),
        ("known_hosts", str(known_hosts)),
        ("known_hosts_verify", "normal"),
        ("sshauth", "privkey"),
    ]
    netloc = f"{quote(login)}@{host if ':' not in host else '[' + host + ']'}" + (
        f":{parts.port}" if parts.port else ""
    )
    return f"{driver}+libssh://{netloc}{parts.path}?{urlencode(params)}", host, port


def host_conns(model: InfraModel, settings: Settings, names: list[str]) -> dict[str, HostConn]:
    """Connection details of every named host; raises :class:`ConnectError` naming every problem."""
    sources = credential_sources(settings)
    out: dict[str, HostConn] = {}
    problems: list[str] = []
    d = settings.deploy
    for name in sorted(names):
        h = model.hosts[name]
        try:
            address = str(h.mgmt_ip.ip)
            check_address(name, address, settings)
            inv = model.inventory.hosts.get(name)
            login = find_login(Target(name, address, "host", tuple(inv.groups) if inv else ()), sources)
            user = (login and login.username) or d.username
            key = (login and login.key_file) or d.key_file
            known = (login and login.known_hosts) or d.known_hosts
            source = login.source if login else "settings"
            uri, lv_host, port = libvirt_uri(h.libvirt_uri, user=user, key_file=key, known_hosts=known)
            if lv_host:
                check_address(name, literal_address(lv_host, name), settings)
            ovsdb = h.ovs.connection
            m = _OVSDB_REMOTE.match(ovsdb)
            if m:
                check_address(name, literal_address(m.group(2).strip("[]"), name), settings)
            elif lv_host:
                raise ConnectError(
                    f"{name}: OVSDB {ovsdb} is a local socket but the host is remote "
                    f"({h.libvirt_uri.split('?', 1)[0]}): use tcp: or ssl: to its ovsdb-server"
                )
            ssh_user = user or urlsplit(h.libvirt_uri).username or "root"
            out[name] = HostConn(
                name=name,
                kind=h.kind,
                address=address,
                libvirt_uri=uri,
                readonly=not h.owns_domains,
                ovsdb=ovsdb,
                ssh_user=ssh_user,
                ssh_port=port,
                key_file=key,
                known_hosts=known,
                source=source,
            )
        except ConnectError as exc:
            problems.append(str(exc) if str(exc).startswith(name) else f"{name}: {exc}")
    if problems:
        raise ConnectError("; ".join(problems))
    return out
