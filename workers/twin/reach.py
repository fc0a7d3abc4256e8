"""How the twin stage reaches a twin's switches: the deploy code's :class:`~workers.deploy.fleet.Fleet`,
with each switch's login from the twin's registration (``credentials.d/twin-<name>.json``, served
only to a target reached through the twin's management namespace) and its socket made inside that
namespace (the FRR driver's ``sock_factory``). Production's credential chain is never asked: a
twin's switch has a production address, never a production login.
"""

from __future__ import annotations

from lintas.engine.settings import Settings
from lintas.workers.deploy.connect import NAPALM, DeviceConn
from lintas.workers.deploy.fleet import Fleet
from lintas.workers.lab.twin import TwinFacts
from lintas.workers.model.model import InfraModel
from lintas.workers.reach.allowlist import ConnectError, check_address
from lintas.workers.reach.credentials import find_login, twin_sources
from lintas.workers.reach.netns import socket_factory


def twin_conns(model: InfraModel, settings: Settings, facts: TwinFacts) -> dict[str, DeviceConn]:
    """The login of every switch of the twin, from its registration only; raises :class:`ConnectError`."""
    sources = twin_sources(settings, facts.name)
    out: dict[str, DeviceConn] = {}
    problems: list[str] = []
    for name in sorted(facts.devices):
        dev = model.devices[name]
        target = facts.target(name)
        try:
            check_address(name, target.address, settings)
            login = find_login(target, sources)
            if login is None or login.key_file is None or login.known_hosts is None:
                raise ConnectError(f"{name}: twin {facts.name!r} registers no login for it")
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
        except ConnectError as exc:
            problems.append(str(exc))
    if problems:
        raise ConnectError("; ".join(problems))
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
