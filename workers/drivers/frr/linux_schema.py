"""``linux.json``: the Linux side of a Linux+FRR switch, applied idempotently with iproute2.

FRR only routes; the kernel forwards. A deploy driver reads this document (strictly:
unknown keys are errors) and makes the switch's network namespace match it:

* ``sysctls``: forwarding on;
* ``loopback``: the router-id/loopback and VTEP addresses on ``lo`` (``/32``);
* ``ports``: front-panel ports in use, with MTU, admin state, description. A
  ``fabric`` port is a routed ``/31`` to a spine or leaf; a ``host`` port is a
  member of the bridge (``pvid`` untagged, ``vlans`` tagged);
* ``vrfs``: one VRF device per tenant VRF (``ip link add NAME type vrf table TABLE``);
* ``bridge``: one VLAN-aware bridge (``vlan_filtering 1``, no default PVID) carrying
  every VLAN of the leaf, L2 networks and the L3 VNI VLANs;
* ``vxlans``: **one VXLAN device per VNI** (``vniNNNN``: ``id VNI local VTEP dstport
  4789 nolearning``), a bridge port whose only VLAN is the mapped one (pvid,
  untagged), with ``neigh_suppress on`` and ``learning off`` (EVPN control plane).
  Chosen over the single-VXLAN-device design because FRR 8.4 and older kernels
  support it fully and each VNI can be added or removed alone;
* ``svis``: VLAN interfaces on the bridge (``vlanNN``), enslaved to their VRF. An
  ``l2`` SVI carries the anycast gateway address and the fabric's anycast MAC on
  every leaf; an ``l3`` SVI (the L3 VNI of a VRF) has no address and keeps the
  switch's own MAC, which is the router MAC of symmetric IRB and must differ per leaf;
* ``management``: what the deploy reaches the switch through. The driver checks it
  and never changes it (a wrong change would cut its own path).

Every device listed is brought up. A driver creates in dependency order (VRFs, bridge,
VXLAN devices and host ports as bridge ports, SVIs, then addresses) and removes what is
no longer listed in the reverse order; it owns only what it created (unlisted ports are
left alone). Lists are sorted; the document is canonical JSON (``indent=2,
sort_keys=True``). The driver owns this format: the renderer builds it from a device's render
context (:mod:`workers.render.linux_side`); :func:`load_linux_spec` parses it back, checking
consistency as well as shape.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
LINUX_MGMT_IF = "eth0"
BRIDGE = "bridge"
SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,14}")
_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


def _ifname(value: str) -> str:
    if not _IFNAME.fullmatch(value):
        raise ValueError(f"invalid Linux interface name {value!r} (1-15 chars)")
    return value


def _cidr(value: str) -> str:
    iface = ipaddress.ip_interface(value)
    if "/" not in value or str(iface) != value:
        raise ValueError(f"expected a canonical address/prefix like 10.0.0.1/31, got {value!r}")
    return value


def _ip(value: str) -> str:
    if str(ipaddress.ip_address(value)) != value:
        raise ValueError(f"expected a canonical IP address, got {value!r}")
    return value


def _mac(value: str) -> str:
    if not _MAC.fullmatch(value):
        raise ValueError(f"expected a lower-case MAC like 00:1c:73:00:00:99, got {value!r}")
    return value


IfName = Annotated[str, AfterValidator(_ifname)]
Cidr = Annotated[str, AfterValidator(_cidr)]
IP = Annotated[str, AfterValidator(_ip)]
MacAddr = Annotated[str, AfterValidator(_mac)]
Mtu = Annotated[int, Field(ge=1280, le=65535)]
VlanId = Annotated[int, Field(ge=1, le=4094)]
VniId = Annotated[int, Field(ge=1, le=16_777_215)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BridgeMember(_Strict):
    pvid: VlanId | None = None
    vlans: list[VlanId] = []


class Port(_Strict):
    name: IfName
    kind: Literal["fabric", "host"]
    mtu: Mtu
    admin_up: bool = True
    description: str = ""
    addresses: list[Cidr] = []
    bridge: BridgeMember | None = None

    @model_validator(mode="after")
    def _routed_or_bridged(self) -> Port:
        if self.addresses and self.bridge is not None:
            raise ValueError(f"port {self.name} is both routed and a bridge member")
        return self


class Loopback(_Strict):
    name: Literal["lo"] = "lo"
    addresses: list[Cidr]


class Vrf(_Strict):
    name: IfName
    table: int = Field(ge=256, le=4_294_967_295)
    l3_vni: VniId


class Bridge(_Strict):
    name: IfName
    mtu: Mtu
    vlan_filtering: Literal[True] = True
    vlans: list[VlanId]


class Vxlan(_Strict):
    name: IfName
    kind: Literal["l2", "l3"]
    vni: VniId
    vlan: VlanId
    local_ip: IP
    dstport: int = Field(4789, ge=1, le=65535)
    learning: Literal[False] = False
    neigh_suppress: bool = True
    mtu: Mtu


class Svi(_Strict):
    name: IfName
    kind: Literal["l2", "l3"]
    vlan: VlanId
    vrf: IfName
    mtu: Mtu
    addresses: list[Cidr] = []
    mac: MacAddr | None = None


class Management(_Strict):
    interface: IfName
    address: Cidr
    gateway: IP | None = None
    vrf: str


class LinuxSpec(_Strict):
    schema_version: Literal[1] = 1
    hostname: str
    management: Management
    sysctls: dict[str, str]
    loopback: Loopback
    ports: list[Port]
    vrfs: list[Vrf] = []
    bridge: Bridge | None = None
    vxlans: list[Vxlan] = []
    svis: list[Svi] = []

    @model_validator(mode="after")
    def _consistent(self) -> LinuxSpec:
        names = [p.name for p in self.ports] + [v.name for v in self.vrfs] + [x.name for x in self.vxlans]
        names += [s.name for s in self.svis] + ([self.bridge.name] if self.bridge else [])
        dupes = sorted(n for n, count in Counter(names).items() if count > 1)
        if dupes:
            raise ValueError(f"interface names used twice: {', '.join(dupes)}")
        vlans = set(self.bridge.vlans) if self.bridge else set()
        vrfs = {v.name for v in self.vrfs}
        mapped = Counter(vx.vlan for vx in self.vxlans)
        if any(count > 1 for count in mapped.values()):
            raise ValueError(f"VLANs mapped to more than one VNI: {sorted(v for v, c in mapped.items() if c > 1)}")
        for vx in self.vxlans:
            if vx.vlan not in vlans:
                raise ValueError(f"{vx.name} maps VLAN {vx.vlan}, which the bridge does not carry")
        for svi in self.svis:
            if svi.vlan not in vlans:
                raise ValueError(f"{svi.name} is on VLAN {svi.vlan}, which the bridge does not carry")
            if svi.vrf not in vrfs:
                raise ValueError(f"{svi.name} is in VRF {svi.vrf}, which is not defined")
            if self.bridge is not None and svi.mtu > self.bridge.mtu:
                raise ValueError(f"{svi.name} MTU {svi.mtu} exceeds the bridge MTU {self.bridge.mtu}")
        for port in self.ports:
            if port.bridge is None:
                continue
            carried = set(port.bridge.vlans) | ({port.bridge.pvid} if port.bridge.pvid else set())
            if not carried <= vlans:
                raise ValueError(f"port {port.name} carries VLANs the bridge does not carry")
        return self


def dump_linux_spec(spec: LinuxSpec) -> str:
    """Canonical text: what is stored, hashed and diffed."""
    return json.dumps(spec.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def load_linux_spec(text: str) -> LinuxSpec:
    """Parse a ``linux.json`` strictly (unknown keys, bad values and inconsistencies are errors)."""
    return LinuxSpec.model_validate_json(text)
