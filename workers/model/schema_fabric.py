"""Schema of ``fabric/*.yaml``: fabric-wide settings, devices, links, VRFs and networks.

These are the *inputs* as written by operators. Values the model can derive
(loopbacks, VTEPs, ASNs, router-ids, /31s) are optional here; the resolved
values live in :mod:`workers.model.model`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from lintas.workers.model.primitives import (
    Address,
    Asn,
    Description,
    Interface,
    IPv4Addr,
    Mac,
    Mtu,
    Name,
    Network,
    NodeId,
    PortName,
    PortSpec,
    SecretRef,
    Spec,
    Vlan,
    Vni,
)

_RANGE = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")


def _asn_range(value: Any) -> Any:
    if isinstance(value, str) and (m := _RANGE.fullmatch(value)):
        return {"first": int(m.group(1)), "last": int(m.group(2))}
    return value


class AsnRange(Spec):
    first: Asn
    last: Asn

    @model_validator(mode="after")
    def _ordered(self) -> AsnRange:
        if self.last < self.first:
            raise ValueError(f"ASN range {self.first}-{self.last} is empty: last is below first")
        return self

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


class Management(Spec):
    subnet: Network
    gateway: Address | None = None
    vrf: Name = "mgmt"

    @model_validator(mode="after")
    def _gateway_inside(self) -> Management:
        if self.gateway is not None and self.gateway not in self.subnet:
            raise ValueError(f"gateway {self.gateway} is outside the management subnet {self.subnet}")
        return self


class Pools(Spec):
    """Derived value = pool start + node id (``10.250.0.0/24`` + id 11 = ``10.250.0.11``)."""

    loopbacks: Network
    vteps: Network
    p2p: Network
    p2p_per_leaf: int = Field(2, ge=1, le=64)
    leaf_asns: Annotated[AsnRange, BeforeValidator(_asn_range)]


class Underlay(Spec):
    protocol: Literal["ebgp"] = "ebgp"
    address_family: Literal["ipv4", "ipv6"] = "ipv4"
    spine_asn: Asn
    password: SecretRef | None = None
    bfd: bool = True
    maximum_paths: int = Field(4, ge=1, le=128)


class Overlay(Spec):
    protocol: Literal["evpn"] = "evpn"
    encapsulation: Literal["vxlan"] = "vxlan"
    anycast_gateway_mac: Mac


class FabricSettings(Spec):
    name: Name
    mtu: Mtu = 9216
    management: Management
    pools: Pools
    underlay: Underlay
    overlay: Overlay

    @model_validator(mode="after")
    def _families(self) -> FabricSettings:
        version = 4 if self.underlay.address_family == "ipv4" else 6
        for key in ("loopbacks", "vteps", "p2p"):
            pool = getattr(self.pools, key)
            if pool.version != version:
                raise ValueError(
                    f"pools.{key} {pool} is IPv{pool.version} but underlay.address_family is "
                    f"{self.underlay.address_family}"
                )
        return self


class DeviceSpec(Spec):
    name: Name
    role: Literal["spine", "leaf"]
    platform: Literal["frr", "eos"]
    id: NodeId
    mgmt_ip: Interface
    ports: list[PortSpec] = Field(min_length=1)
    asn: Asn | None = None
    loopback: Address | None = None
    vtep_ip: Address | None = None
    router_id: IPv4Addr | None = None
    description: Description = ""

    @model_validator(mode="after")
    def _spine_has_no_vtep(self) -> DeviceSpec:
        if self.role == "spine" and self.vtep_ip is not None:
            raise ValueError("only leaves have a VTEP: remove vtep_ip from this spine")
        return self


class LinkEnd(Spec):
    device: Name
    port: PortName
    ip: Interface | None = None


class LinkSpec(Spec):
    a: LinkEnd
    b: LinkEnd
    subnet: Network | None = None
    description: Description = ""


class VrfSpec(Spec):
    name: Name
    l3_vni: Vni
    l3_vlan: Vlan
    description: Description = ""


class NetworkSpec(Spec):
    name: Name
    vrf: Name
    vlan: Vlan
    vni: Vni
    gateway: Interface
    mtu: Mtu = 9000
    leaves: list[Name] | Literal["all"]
    description: Description = ""

    @model_validator(mode="after")
    def _gateway_is_a_host_address(self) -> NetworkSpec:
        net = self.gateway.network
        if net.num_addresses > 2 and self.gateway.ip in (net.network_address, net.broadcast_address):
            raise ValueError(f"gateway {self.gateway} is not a usable host address of {net}")
        return self


class FabricFile(Spec):
    fabric: FabricSettings


class DevicesFile(Spec):
    devices: list[DeviceSpec] = []


class LinksFile(Spec):
    links: list[LinkSpec] = []


class TenantsFile(Spec):
    vrfs: list[VrfSpec] = []
    networks: list[NetworkSpec] = []
