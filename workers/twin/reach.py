"""How the twin stage reaches a twin's switches and hosts: the deploy code's
:class:`~workers.deploy.fleet.Fleet` and :class:`~workers.deploy.hostfleet.HostFleet`, with each
target's login from the twin's registration (``credentials.d/twin-<name>.json``, served only to a
target reached through the twin's management namespace).

- a switch: its socket made inside that namespace (the FRR driver's ``sock_factory``);
- a host (:class:`TwinHostFleet`): libvirt and OVSDB through the twin host's own unix sockets under
  ``/run/lintas-twin/<prefix>/`` (``qemu+unix:///system?socket=...``, ``unix:.../db.sock``; the
  read-only libvirt socket for an ``openstack`` host), never its modelled ``tcp:``/``qemu+ssh:``
  remote; SSH run inside the twin's management namespace (:attr:`HostConn.namespace`).

Production's credential chain is never asked: a twin's target has a production address, never a
production login.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lintas.engine.settings import Settings
from lintas.workers.deploy.connect import NAPALM, DeviceConn
from lintas.workers.deploy.fleet import Fleet
from lintas.workers.deploy.hostfleet import HostFleet
from lintas.workers.hosts.connect import HostConn
from lintas.workers.lab.twin import TwinFacts
from lintas.workers.model.model import InfraModel
from lintas.workers.reach.allowlist import ConnectError, check_address
from lintas.workers.reach.credentials import Login, Target, find_login, twin_sources
from lintas.workers.reach.netns import socket_factory


def _twin_logins(
    settings: Settings, facts: TwinFacts, names: Iterable[str], known: Callable[[str], bool]
) -> dict[str, tuple[Target, Login]]:
    """Each named target's login, from the twin's registration only (``known``: the twin built it);
    raises :class:`ConnectError` naming every problem."""
    sources = twin_sources(settings, facts.name)
    out: dict[str, tuple[Target, Login]] = {}
    problems: list[str] = []
    for name in sorted(set(names)):
        try:
            if not known(name):
                raise ConnectError(f"{name}: not built by twin {facts.name!r}")
            target = facts.target(name)
            check_address(name, target.address, settings)
            login = find_login(target, sources)
            if login is None or login.key_file is None or login.known_hosts is None:
                raise ConnectError(f"{name}: twin {facts.name!r} registers no login for it")
            out[name] = (target, login)
        except ConnectError as exc:
            problems.append(str(exc))
    if problems:
        raise ConnectError("; ".join(problems))
    return out


def twin_conns(model: InfraModel, settings: Settings, facts: TwinFacts) -> dict[str, DeviceConn]:
    """The login of every switch of the twin, from its registration only; raises :class:`ConnectError`."""
    out: dict[str, DeviceConn] = {}
    for name, (target, login) in _twin_logins(settings, facts, facts.devices, facts.devices.__contains__).items():
        dev = model.devices[name]
        assert login.key_file is not None and login.known_hosts is not None  # _twin_logins checked them
        out[name] = DeviceConn(
            name,
            dev.role,
            dev.platform,
            target.address,
            login.port or 22,
            login.username or "root",
            login.key_file,
            login.known_hosts,
            None,
            login.source,
        )
    return out


class TwinFleet(Fleet):
    """A :class:`Fleet` over a twin's switches: the same nornir/napalm path, reached through the twin's namespace."""

    def __init__(
        self, model: InfraModel, settings: Settings, facts: TwinFacts, *, parallelism: int | None = None
    ) -> None:
        conns = twin_conns(model, settings, facts)
        super().__init__(model, settings, conns, parallelism=parallelism, conns=conns)
        for name, host in self._nr.inventory.hosts.items():
            extras = host.connection_options[NAPALM].extras or {}
            extras["optional_args"]["sock_factory"] = socket_factory(
                facts.target(name), self.conns[name].port, settings
            )


def twin_host_conns(
    model: InfraModel, settings: Settings, facts: TwinFacts, names: Iterable[str]
) -> dict[str, HostConn]:
    """The connection of every named host of the twin (built by it), its login from the twin's
    registration only; raises :class:`ConnectError` naming every problem."""
    out: dict[str, HostConn] = {}
    for name, (target, login) in _twin_logins(settings, facts, names, facts.hosts.__contains__).items():
        f = facts.hosts[name]
        readonly = not model.hosts[name].owns_domains
        socket = f.libvirt_ro_socket if readonly else f.libvirt_socket
        out[name] = HostConn(
            name=name,
            kind=model.hosts[name].kind,
            address=target.address,
            libvirt_uri=f"qemu+unix:///system?socket={socket}",
            readonly=readonly,
            ovsdb=f.ovsdb_socket,
            ssh_user=login.username or "root",
            ssh_port=login.port or 22,
            key_file=login.key_file,
            known_hosts=login.known_hosts,
            source=login.source,
            namespace=facts.mgmt_namespace,
        )
    return out


class TwinHostFleet(HostFleet):
    """A :class:`HostFleet` over a twin's hosts: the same host operations, on the twin's own sockets."""

    def __init__(
        self,
        model: InfraModel,
        settings: Settings,
        facts: TwinFacts,
        names: Iterable[str],
        *,
        parallelism: int | None = None,
    ) -> None:
        conns = twin_host_conns(model, settings, facts, names)
        super().__init__(model, settings, sorted(conns), parallelism=parallelism, conns=conns)
