"""The model while it is being checked: specs as parsed, with their origins,
plus the values resolved so far. Semantic checks read and extend a Draft;
:func:`workers.model.loader.load_model` turns a Draft without errors into an
:class:`~workers.model.model.InfraModel`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from lintas.workers.model.model import Device, Host, Link, Network
from lintas.workers.model.schema_fabric import DeviceSpec, FabricSettings, LinkSpec, NetworkSpec, VrfSpec
from lintas.workers.model.schema_hosts import FlavorSpec, HostDefaults, HostSpec, InstanceSpec
from lintas.workers.model.schema_inventory import InventoryDefaults, InventoryGroup, InventoryHost
from lintas.workers.model.source import Origin, PathPart, Report


@dataclass
class Draft:
    report: Report
    fabric: FabricSettings | None = None
    host_defaults: HostDefaults = field(default_factory=HostDefaults)
    devices: dict[str, DeviceSpec] = field(default_factory=dict)
    links: list[tuple[LinkSpec, Origin]] = field(default_factory=list)
    vrfs: dict[str, VrfSpec] = field(default_factory=dict)
    networks: dict[str, NetworkSpec] = field(default_factory=dict)
    hosts: dict[str, HostSpec] = field(default_factory=dict)
    flavors: dict[str, FlavorSpec] = field(default_factory=dict)
    instances: dict[str, InstanceSpec] = field(default_factory=dict)
    inventory_hosts: dict[str, InventoryHost] = field(default_factory=dict)
    inventory_groups: dict[str, InventoryGroup] = field(default_factory=dict)
    inventory_defaults: InventoryDefaults = field(default_factory=InventoryDefaults)
    origins: dict[tuple[str, str], Origin] = field(default_factory=dict)
    # names whose definition failed the schema or derivation: references to
    # them are not reported again as "unknown"
    broken: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # kinds whose file could not be read at all: every reference to them is unverifiable
    unavailable: set[str] = field(default_factory=set)
    # resolved
    ports: dict[str, frozenset[str]] = field(default_factory=dict)
    port_users: dict[tuple[str, str], tuple[str, Origin, tuple[PathPart, ...]]] = field(default_factory=dict)
    r_devices: dict[str, Device] = field(default_factory=dict)
    r_links: list[tuple[Link, Origin]] = field(default_factory=list)
    r_networks: dict[str, Network] = field(default_factory=dict)
    r_hosts: dict[str, Host] = field(default_factory=dict)

    def origin(self, kind: str, name: str) -> Origin:
        return self.origins[(kind, name)]

    def add(self, kind: str, name: str, message: str, *sub: PathPart) -> None:
        """Report ``message`` at the definition of ``kind`` ``name`` (or inside it)."""
        self.report.add(self.origins[(kind, name)], message, *sub)

    def is_broken(self, kind: str, name: str) -> bool:
        return kind in self.unavailable or name in self.broken[kind]

    def use_port(self, device: str, port: str, user: str, origin: Origin, *sub: PathPart) -> None:
        """Claim a device port for a link or a host uplink; report a second claim."""
        first = self.port_users.get((device, port))
        if first is None:
            self.port_users[(device, port)] = (user, origin, sub)
            return
        other, other_origin, other_sub = first
        where = other_origin.where(*other_sub)
        self.report.add(origin, f"port {device}:{port} is already used by {other} ({where})", *sub)
