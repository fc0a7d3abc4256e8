"""Schema of ``hosts/*.yaml``: hypervisors, flavors and instances.

Two kinds of host: ``kvm`` (Lintas defines the libvirt domains) and
``openstack`` (nova defines them; Lintas owns only the host networking and
compares the running domains against the instances listed here).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, model_validator

from lintas.workers.model.primitives import Address, Description, Interface, Mac, Mtu, Name, PortName, Spec

_LIBVIRT_URI = re.compile(r"(qemu|qemu\+ssh|qemu\+tls|qemu\+tcp|qemu\+unix|test)://[^\s]*")
_OVSDB = re.compile(r"unix:/\S+|(tcp|ssl):[\w.\-\[\]:]+:\d+")
_OVN_REMOTE = re.compile(r"(tcp|ssl):[\w.\-\[\]:]+:\d+(,(tcp|ssl):[\w.\-\[\]:]+:\d+)*")


def _matches(regex: re.Pattern[str], what: str, example: str) -> AfterValidator:
    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"invalid {what} {value!r}: expected something like {example}")
        return value

    return AfterValidator(check)


LibvirtUri = Annotated[str, _matches(_LIBVIRT_URI, "libvirt URI", "qemu+ssh://lintas@10.255.0.101/system")]
OvsdbTarget = Annotated[str, _matches(_OVSDB, "OVSDB connection", "unix:/var/run/openvswitch/db.sock")]
OvnRemote = Annotated[str, _matches(_OVN_REMOTE, "ovn-remote", "ssl:10.255.0.5:6642")]
Ratio = Annotated[float, Field(gt=0, le=64)]


class Ovs(Spec):
    connection: OvsdbTarget = "unix:/var/run/openvswitch/db.sock"
    integration_bridge: Name = "br-int"
    datapath_type: Literal["system", "netdev"] = "system"
    bridges: list[Name] = []


class Tunnels(Spec):
    """Plain OVS geneve ports: one per peer, ``options:remote_ip``, ``key=flow``, ``csum=true``."""

    type: Literal["geneve"] = "geneve"
    key: Literal["flow"] | Annotated[int, Field(ge=0, le=16_777_215)] = "flow"
    csum: bool = True
    peers: list[Name] | Literal["all"] = "all"


class Ovn(Spec):
    """OVN chassis settings in ``Open_vSwitch external_ids``; ovn-controller makes the tunnels."""

    encap_type: Literal["geneve", "vxlan"] = "geneve"
    encap_ip: Address | None = None
    remote: OvnRemote
    bridge_mappings: dict[Name, Name] = {}
    system_id: Name | None = None


class Uplink(Spec):
    leaf: Name
    port: PortName
    nic: PortName
    mtu: Mtu = 9000
    tunnel_network: Name
    tunnel_ip: Interface
    networks: list[Name] = []


class Capacity(Spec):
    vcpus: int = Field(ge=1, le=4096)
    memory_mib: int = Field(ge=64)
    reserved_memory_mib: int = Field(0, ge=0)
    cpu_allocation_ratio: Ratio | None = None
    ram_allocation_ratio: Ratio | None = None

    @model_validator(mode="after")
    def _reserve_fits(self) -> Capacity:
        if self.reserved_memory_mib >= self.memory_mib:
            raise ValueError(
                f"reserved_memory_mib {self.reserved_memory_mib} leaves no memory of {self.memory_mib} MiB"
            )
        return self


class HostSpec(Spec):
    name: Name
    kind: Literal["kvm", "openstack"]
    mgmt_ip: Interface
    libvirt_uri: LibvirtUri
    # the <domain type> of the domains Lintas defines: kvm, or qemu (TCG) where guests cannot use KVM
    domain_type: Literal["kvm", "qemu"] = "kvm"
    ovs: Ovs = Ovs()
    uplink: Uplink
    tunnels: Tunnels | None = None
    ovn: Ovn | None = None
    overlay_mtu: Mtu | None = None
    capacity: Capacity
    description: Description = ""

    @model_validator(mode="after")
    def _one_tunnel_mode(self) -> HostSpec:
        if (self.tunnels is None) == (self.ovn is None):
            raise ValueError("set exactly one of 'tunnels' (plain OVS geneve) or 'ovn' (OVN chassis settings)")
        return self


class HostDefaults(Spec):
    cpu_allocation_ratio: Ratio = 4.0
    ram_allocation_ratio: Ratio = 1.0


class FlavorSpec(Spec):
    name: Name
    vcpus: int = Field(ge=1, le=1024)
    ram_mib: int = Field(ge=16)
    disk_gb: int = Field(ge=0)
    swap_mib: int = Field(0, ge=0)
    ephemeral_gb: int = Field(0, ge=0)
    extra_specs: dict[str, str] = {}
    description: Description = ""


class NicSpec(Spec):
    network: Name
    mac: Mac
    bridge: Name = "br-int"
    model: Literal["virtio"] = "virtio"
    port_id: UUID | None = None


class InstanceSpec(Spec):
    name: Name
    uuid: UUID
    flavor: Name
    host: Name
    state: Literal["running", "stopped", "absent"] = "running"
    project: Name
    owner: Annotated[str, Field(min_length=1, max_length=128)]
    image: Annotated[str, Field(max_length=1024)] | None = None
    nics: list[NicSpec] = []
    description: Description = ""


class HostsFile(Spec):
    defaults: HostDefaults = HostDefaults()
    hosts: list[HostSpec] = []


class FlavorsFile(Spec):
    flavors: list[FlavorSpec] = []


class InstancesFile(Spec):
    instances: list[InstanceSpec] = []
