"""The resolved infrastructure model: what validation returns and rendering reads.

Derived values are filled in (a device's ``asn`` is its explicit ASN or the one
drawn from the pool), references are known to resolve, and indexes that
renderers need (links per device, networks per leaf, instances per host) are
precomputed. Objects are frozen and compare by value, which is what
:mod:`workers.model.graph` relies on to find what changed between two models.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from lintas.workers.model.primitives import IPAddress, IPInterface, IPNetwork
from lintas.workers.model.schema_fabric import FabricSettings, VrfSpec
from lintas.workers.model.schema_hosts import Capacity, FlavorSpec, InstanceSpec, Ovn, Ovs, Tunnels, Uplink
from lintas.workers.model.schema_inventory import InventoryDefaults, InventoryGroup, InventoryHost
from lintas.workers.model.source import Origin

Role = Literal["spine", "leaf"]
Platform = Literal["frr", "eos"]
HostKind = Literal["kvm", "openstack"]


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    role: Role
    platform: Platform
    id: int
    mgmt_ip: IPInterface
    ports: tuple[str, ...]
    asn: int
    loopback: IPAddress
    router_id: ipaddress.IPv4Address
    vtep: IPAddress | None
    description: str = ""

    @property
    def is_leaf(self) -> bool:
        return self.role == "leaf"


@dataclass(frozen=True, slots=True)
class LinkEnd:
    device: str
    port: str
    ip: IPInterface


@dataclass(frozen=True, slots=True)
class Link:
    """A spine-leaf underlay link: a routed /31 (or /127) with an eBGP session."""

    spine: LinkEnd
    leaf: LinkEnd
    subnet: IPNetwork
    mtu: int
    description: str = ""

    @property
    def key(self) -> str:
        return f"{self.spine.device}:{self.spine.port}--{self.leaf.device}:{self.leaf.port}"

    def local(self, device: str) -> LinkEnd:
        return self.spine if device == self.spine.device else self.leaf

    def remote(self, device: str) -> LinkEnd:
        return self.leaf if device == self.spine.device else self.spine


@dataclass(frozen=True, slots=True)
class Network:
    """An L2 VNI mapped 1:1 to a VLAN, with an anycast gateway SVI in a VRF."""

    name: str
    vrf: str
    vlan: int
    vni: int
    gateway: IPInterface
    mtu: int
    leaves: tuple[str, ...]
    description: str = ""

    @property
    def subnet(self) -> IPNetwork:
        return self.gateway.network


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    kind: HostKind
    mgmt_ip: IPInterface
    libvirt_uri: str
    domain_type: str
    ovs: Ovs
    uplink: Uplink
    tunnels: Tunnels | None
    ovn: Ovn | None
    capacity: Capacity
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    encap_overhead: int
    overlay_mtu: int
    peers: tuple[str, ...]
    description: str = ""

    @property
    def owns_domains(self) -> bool:
        """True when Lintas defines the libvirt domains (kind ``kvm``); nova does on ``openstack``."""
        return self.kind == "kvm"

    @property
    def tunnel_ip(self) -> IPInterface:
        return self.uplink.tunnel_ip

    @property
    def vcpu_limit(self) -> float:
        return self.capacity.vcpus * self.cpu_allocation_ratio

    @property
    def memory_limit_mib(self) -> float:
        return (self.capacity.memory_mib - self.capacity.reserved_memory_mib) * self.ram_allocation_ratio


@dataclass(frozen=True, slots=True)
class Inventory:
    """nornir SimpleInventory content (credentials are secret references)."""

    hosts: Mapping[str, InventoryHost] = field(default_factory=dict)
    groups: Mapping[str, InventoryGroup] = field(default_factory=dict)
    defaults: InventoryDefaults = InventoryDefaults()


@dataclass(frozen=True)
class InfraModel:
    """A validated model. Built only by :func:`workers.model.loader.load_model`."""

    fabric: FabricSettings
    devices: Mapping[str, Device]
    links: tuple[Link, ...]
    vrfs: Mapping[str, VrfSpec]
    networks: Mapping[str, Network]
    hosts: Mapping[str, Host]
    flavors: Mapping[str, FlavorSpec]
    instances: Mapping[str, InstanceSpec]
    inventory: Inventory
    origins: Mapping[tuple[str, str], Origin] = field(default_factory=dict, compare=False, repr=False)
    links_by_device: Mapping[str, tuple[Link, ...]] = field(default_factory=dict, compare=False, repr=False)
    networks_by_leaf: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    hosts_by_leaf: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    instances_by_host: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def spines(self) -> list[Device]:
        return [d for d in self.devices.values() if d.role == "spine"]

    @property
    def leaves(self) -> list[Device]:
        return [d for d in self.devices.values() if d.role == "leaf"]

    @property
    def targets(self) -> set[str]:
        """Everything Lintas renders and deploys to: devices and hosts."""
        return set(self.devices) | set(self.hosts)

    def vrfs_of_leaf(self, leaf: str) -> list[str]:
        return sorted({self.networks[n].vrf for n in self.networks_by_leaf.get(leaf, ())})

    def origin(self, kind: str, name: str) -> Origin | None:
        """Where an object was defined: ``model.origin("device", "leaf-01").where()``."""
        return self.origins.get((kind, name))
