"""Semantic checks of the fabric: unique identities, tenants, overlaps, MTU."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from lintas.workers.model.draft import Draft
from lintas.workers.model.model import Network
from lintas.workers.model.overhead import overhead
from lintas.workers.model.overlap import find_overlaps
from lintas.workers.model.primitives import IPNetwork
from lintas.workers.model.schema_fabric import DeviceSpec, FabricSettings
from lintas.workers.model.source import Origin, PathPart


class _Unique:
    """First owner of each value; reports later owners as duplicates."""

    def __init__(self, draft: Draft, what: str) -> None:
        self.draft, self.what = draft, what
        self.seen: dict[Hashable, tuple[str, Origin, tuple[PathPart, ...]]] = {}

    def claim(self, value: Hashable, owner: str, origin: Origin, *sub: PathPart) -> bool:
        """Record ``owner`` for ``value``; False (and a diagnostic) if it was taken."""
        first = self.seen.get(value)
        if first is None:
            self.seen[value] = (owner, origin, sub)
            return True
        name, first_origin, first_sub = first
        self.draft.report.add(
            origin,
            f"duplicate {self.what} {value}: already used by '{name}' ({first_origin.where(*first_sub)})",
            *sub,
        )
        return False


def _key(spec: DeviceSpec, *fields: str) -> str:
    """The key a derived value is attributed to: the first explicit field, else ``id``."""
    return next((f for f in fields if getattr(spec, f) is not None), "id")


def check_devices(draft: Draft, fabric: FabricSettings) -> None:  # noqa: C901 - a flat list of independent rules
    """Unique node ids, management IPs, loopbacks, router-ids, VTEPs and leaf ASNs."""
    ids, mgmt = _Unique(draft, "node id"), _Unique(draft, "management IP")
    duplicate_ids: set[str] = set()
    for name, spec in draft.devices.items():
        origin = draft.origin("device", name)
        if not ids.claim(spec.id, name, origin, "id"):
            duplicate_ids.add(name)
        mgmt.claim(spec.mgmt_ip.ip, name, origin, "mgmt_ip")
        _in_management(draft, fabric, origin, spec.mgmt_ip.ip)
    for name, host in draft.hosts.items():
        origin = draft.origin("host", name)
        mgmt.claim(host.mgmt_ip.ip, name, origin, "mgmt_ip")
        _in_management(draft, fabric, origin, host.mgmt_ip.ip)

    # A duplicated id already explains duplicated derived values: only explicit
    # values of such a device are checked further.
    def checked(name: str, key: str) -> bool:
        return key != "id" or name not in duplicate_ids

    loopbacks, rids = _Unique(draft, "loopback"), _Unique(draft, "router-id")
    vteps, asns = _Unique(draft, "VTEP IP"), _Unique(draft, "leaf ASN")
    devices = [(name, dev, draft.devices[name], draft.origin("device", name)) for name, dev in draft.r_devices.items()]
    duplicate_loopbacks: set[str] = set()
    for name, dev, spec, origin in devices:
        key = _key(spec, "loopback")
        if checked(name, key) and not loopbacks.claim(dev.loopback, name, origin, key):
            duplicate_loopbacks.add(name)
    for name, dev, spec, origin in devices:
        key = _key(spec, "router_id", "loopback")
        # a router-id taken from a duplicate loopback is the same problem, reported once
        if checked(name, key) and (spec.router_id is not None or name not in duplicate_loopbacks):
            rids.claim(dev.router_id, name, origin, key)
    spine_asns: dict[int, str] = {}
    for name, dev, _spec, _origin in devices:
        if dev.role == "spine":
            spine_asns.setdefault(dev.asn, name)
    for name, dev, spec, origin in devices:
        if dev.role != "leaf":
            continue
        key = _key(spec, "vtep_ip")
        if dev.vtep in loopbacks.seen:
            other = loopbacks.seen[dev.vtep][0]
            draft.add("device", name, f"VTEP IP {dev.vtep} is the loopback of '{other}'", key)
        elif checked(name, key):
            vteps.claim(dev.vtep, name, origin, key)
        key = _key(spec, "asn")
        if dev.asn in spine_asns:
            draft.add("device", name, f"leaf ASN {dev.asn} is the ASN of spine '{spine_asns[dev.asn]}'", key)
        elif checked(name, key):
            asns.claim(dev.asn, name, origin, key)


def _in_management(draft: Draft, fabric: FabricSettings, origin: Origin, ip: Any) -> None:
    subnet = fabric.management.subnet
    if ip not in subnet:
        draft.report.add(origin, f"management IP {ip} is outside the management subnet {subnet}", "mgmt_ip")


def check_tenants(draft: Draft, fabric: FabricSettings) -> None:
    """VRFs and networks: references, VLAN<->VNI 1:1, L2/L3 VNIs disjoint, VXLAN MTU budget.

    Fills ``draft.r_networks``.
    """
    vnis: dict[int, tuple[str, Origin, str]] = {}
    vlans: dict[int, tuple[str, Origin, str]] = {}
    for name, vrf in draft.vrfs.items():
        origin = draft.origin("vrf", name)
        if (user := vnis.get(vrf.l3_vni)) is not None:
            draft.add(
                "vrf", name, f"L3 VNI {vrf.l3_vni} is already used by {user[0]} ({user[1].where(user[2])})", "l3_vni"
            )
        else:
            vnis[vrf.l3_vni] = (f"VRF '{name}' as its L3 VNI", origin, "l3_vni")
        if (user := vlans.get(vrf.l3_vlan)) is not None:
            draft.add(
                "vrf", name, f"VLAN {vrf.l3_vlan} is already used by {user[0]} ({user[1].where(user[2])})", "l3_vlan"
            )
        else:
            vlans[vrf.l3_vlan] = (f"VRF '{name}' as its L3 VLAN", origin, "l3_vlan")
    leaves = [n for n, d in draft.devices.items() if d.role == "leaf"]
    vxlan = overhead("vxlan", 4 if fabric.underlay.address_family == "ipv4" else 6)
    family = "IPv4" if fabric.underlay.address_family == "ipv4" else "IPv6"
    for name, net in draft.networks.items():
        origin = draft.origin("network", name)
        ok = True
        if net.vrf not in draft.vrfs and not draft.is_broken("vrf", net.vrf):
            draft.add("network", name, f"unknown VRF '{net.vrf}'", "vrf")
            ok = False
        if (user := vnis.get(net.vni)) is not None:
            draft.add("network", name, f"VNI {net.vni} is already used by {user[0]} ({user[1].where(user[2])})", "vni")
            ok = False
        else:
            vnis[net.vni] = (f"network '{name}' for VLAN {net.vlan}", origin, "vni")
        if (user := vlans.get(net.vlan)) is not None:
            draft.add(
                "network", name, f"VLAN {net.vlan} is already used by {user[0]} ({user[1].where(user[2])})", "vlan"
            )
            ok = False
        else:
            vlans[net.vlan] = (f"network '{name}' for VNI {net.vni}", origin, "vlan")
        if net.mtu + vxlan > fabric.mtu:
            draft.add(
                "network",
                name,
                f"MTU budget: network MTU {net.mtu} + {vxlan} bytes of VXLAN over {family} = {net.mtu + vxlan} "
                f"exceeds the fabric MTU {fabric.mtu}",
                "mtu",
            )
        carried = leaves if net.leaves == "all" else _network_leaves(draft, name, net.leaves)
        if ok:
            draft.r_networks[name] = Network(
                name=name,
                vrf=net.vrf,
                vlan=net.vlan,
                vni=net.vni,
                gateway=net.gateway,
                mtu=net.mtu,
                leaves=tuple(carried),
                description=net.description,
            )
        else:
            draft.broken["network"].add(name)


def _network_leaves(draft: Draft, name: str, listed: list[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for index, leaf in enumerate(listed):
        device = draft.devices.get(leaf)
        if device is None:
            if not draft.is_broken("device", leaf):
                draft.add("network", name, f"unknown leaf '{leaf}'", "leaves", index)
        elif device.role != "leaf":
            draft.add("network", name, f"'{leaf}' is a {device.role}; networks are carried by leaves", "leaves", index)
        elif leaf in seen:
            draft.add("network", name, f"leaf '{leaf}' is listed twice", "leaves", index)
        else:
            seen.add(leaf)
            out.append(leaf)
    return out


def check_overlaps(draft: Draft, fabric: FabricSettings, fabric_origin: Origin) -> None:
    """Pools, the management subnet and network subnets must not overlap."""
    nets: list[IPNetwork] = []
    where: list[tuple[str, Origin, tuple[PathPart, ...]]] = []
    base = ("fabric", "pools")
    for key in ("loopbacks", "vteps", "p2p"):
        nets.append(getattr(fabric.pools, key))
        where.append((f"pools.{key}", fabric_origin, (*base, key)))
    nets.append(fabric.management.subnet)
    where.append(("the management subnet", fabric_origin, ("fabric", "management", "subnet")))
    for name, net in draft.networks.items():
        nets.append(net.gateway.network)
        where.append((f"the subnet of network '{name}'", draft.origin("network", name), ("gateway",)))
    for i, j in find_overlaps(nets):
        label_i, origin_i, sub_i = where[i]
        label_j, origin_j, sub_j = where[j]
        draft.report.add(
            origin_j,
            f"{nets[j]} ({label_j}) overlaps {nets[i]} ({label_i}, {origin_i.where(*sub_i)})",
            *sub_j,
        )
