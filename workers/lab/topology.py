"""The lab's plan, computed from an infra model: pure, no system calls.

Naming scheme (every name the lab creates starts with ``lx``, a prefix reserved for it):

* network namespace of a switch or host: ``lx-<name>`` (``lx-leaf-01``);
* inside a switch namespace, the modelled port names (``swp51``) and ``eth0`` for
  management, exactly as on a Linux switch: veth pairs are created directly inside
  their namespaces, so these names never exist in the root namespace;
* root namespace: the management bridge ``lxmgmt0`` (the management gateway address,
  ``10.255.0.1/24`` in the template) and one veth per switch and host, ``lxm-<name>`` when that
  fits the kernel's 15 characters, else ``lxm`` + 12 hex digits of SHA-1(name);
* runtime directory of a switch or host: ``/run/lintas-lab/lx-<name>/`` (see :mod:`workers.lab.paths`).

That is the **production lab** (:data:`PRODUCTION`, one per machine). A **twin** (issue 18) is a
second, isolated instance of the same topology (:func:`twin_instance`): its prefix is ``lt`` + 4
hex digits (``lt3f2a``), its namespaces ``lt3f2a-<name>``, its management bridge ``lt3f2amgmt0``
and the management veths' bridge ends ``lt3f2am-<name>`` (or ``lt3f2am`` + 8 hex digits) live in a
namespace of its own, ``lt3f2a-mgmt``, which also holds the management gateway address: a twin
adds no interface and no address to the root namespace, so its switches keep the modelled
management addresses (the same as the production lab's) without any clash or route between them.

Hypervisor hosts get a namespace ``lx-<host>`` holding their uplink NIC (modelled
``uplink.nic``, MTU ``uplink.mtu``), the other end of a veth whose leaf end is the
modelled leaf port, so the leaf's host ports exist for the deploy, and ``eth0`` on the
management bridge with the host's modelled ``mgmt_ip`` (root end named like a switch's).
Their daemons (libvirtd, virtlogd, ovsdb-server, ovs-vswitchd, sshd) are started by
:mod:`workers.lab.hypervisor`; the uplink's addresses are the deploy's.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Protocol

from lintas.workers.drivers.frr.linux_schema import LINUX_MGMT_IF
from lintas.workers.lab.cmd import LabError
from lintas.workers.model.model import InfraModel

PREFIX = "lx"
NS_PREFIX = PREFIX + "-"
MGMT_BRIDGE = PREFIX + "mgmt0"
MGMT_BRIDGE_MAC = "02:6c:78:00:00:01"  # locally administered, fixed ("lx")
MGMT_VETH_PREFIX = PREFIX + "m"
MGMT_IF = LINUX_MGMT_IF  # "eth0", what the renderer's linux.json calls the management port
IFNAMSIZ = 15
SSH_PORT = 22
TWIN_PREFIX = "lt"
TWIN_TAG_HEX = 4
MGMT_NAMESPACE_SUFFIX = "mgmt"  # a twin's management namespace: "<prefix>-mgmt"
OUT_OF_SLICE = "out-of-slice"  # holds the far ends of a sliced twin's ports to switches not built

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,14}")
_TWIN = re.compile(rf"{TWIN_PREFIX}[0-9a-f]{{{TWIN_TAG_HEX}}}")
_TWIN_NS = re.compile(rf"({_TWIN.pattern})-.+")


@dataclass(frozen=True, slots=True)
class Instance:
    """Which lab: the production lab (prefix ``lx``, management in the root namespace) or a twin
    (prefix ``lt<hex>``, management in the namespace ``<prefix>-mgmt``)."""

    prefix: str
    mgmt_namespace: str | None = None  # None: the management bridge is in the root namespace

    @property
    def ns_prefix(self) -> str:
        return self.prefix + "-"

    @property
    def bridge(self) -> str:
        return self.prefix + "mgmt0"

    @property
    def is_twin(self) -> bool:
        return self.mgmt_namespace is not None

    def namespace(self, node: str) -> str:
        """``<prefix>-<node>``: the network namespace of a switch or host."""
        if not _NAME.fullmatch(node):
            raise LabError(f"cannot name a namespace after {node!r}")
        return self.ns_prefix + node

    def mgmt_veth(self, node: str) -> str:
        """Bridge end of a switch's or host's management veth (at most 15 characters)."""
        veth_prefix = self.prefix + "m"
        short = f"{veth_prefix}-{node}"
        if len(short) <= IFNAMSIZ and _IFNAME.fullmatch(short):
            return short
        return veth_prefix + hashlib.sha1(node.encode()).hexdigest()[: IFNAMSIZ - len(veth_prefix)]

    def owns_namespace(self, name: str) -> bool:
        return name.startswith(self.ns_prefix)


PRODUCTION = Instance(PREFIX)


def twin_instance(tag: str) -> Instance:
    """The twin of tag ``tag`` (4 hex digits): prefix ``lt<tag>``, management namespace ``lt<tag>-mgmt``."""
    prefix = TWIN_PREFIX + tag
    if not _TWIN.fullmatch(prefix):
        raise LabError(f"a twin's tag is {TWIN_TAG_HEX} lowercase hex digits, not {tag!r}")
    return Instance(prefix, f"{prefix}-{MGMT_NAMESPACE_SUFFIX}")


def is_twin_prefix(name: str) -> bool:
    return _TWIN.fullmatch(name) is not None


def twin_of_namespace(name: str) -> Instance | None:
    """The twin a namespace belongs to (``lt3f2a-leaf-01`` -> twin ``lt3f2a``), else None."""
    m = _TWIN_NS.fullmatch(name)
    return twin_instance(m.group(1)[len(TWIN_PREFIX) :]) if m else None


def namespace_name(node: str) -> str:
    """``lx-<node>``: the network namespace of a switch or host of the production lab."""
    return PRODUCTION.namespace(node)


def mgmt_veth_name(node: str) -> str:
    """Root-namespace end of a production switch's or host's management veth (at most 15 characters)."""
    return PRODUCTION.mgmt_veth(node)


def is_lab_namespace(name: str) -> bool:
    return name.startswith(NS_PREFIX)


def is_lab_root_link(name: str) -> bool:
    return name == MGMT_BRIDGE or name.startswith(MGMT_VETH_PREFIX)


@dataclass(frozen=True, slots=True)
class End:
    namespace: str
    ifname: str
    address: str | None  # "10.250.16.22/31" or None
    mtu: int


@dataclass(frozen=True, slots=True)
class VethPair:
    # stub: to a left-out host's NIC, or a sliced twin's port to a switch not built (namespaces without daemons)
    kind: Literal["fabric", "host", "stub"]
    a: End
    b: End
    description: str = ""


class Node(Protocol):
    """A switch or a host: what SSH and management need."""

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def mgmt_ip(self) -> str: ...  # with prefix: "10.255.0.21/24"

    @property
    def mgmt_veth(self) -> str: ...

    @property
    def mgmt_address(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SwitchPlan:
    name: str
    role: str
    namespace: str
    mgmt_ip: str  # "10.255.0.21/24"
    mgmt_veth: str  # root-namespace end, e.g. "lxm-leaf-01"

    @property
    def mgmt_address(self) -> str:
        return self.mgmt_ip.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class HostPlan:
    name: str
    namespace: str
    nic: str
    leaf: str
    leaf_port: str
    kind: str = "kvm"  # "kvm" | "openstack"
    mgmt_ip: str = ""  # "10.255.0.101/24"
    mgmt_veth: str = ""  # root-namespace end, e.g. "lxm-osc-01"
    domain_type: str = "kvm"  # the modelled <domain type>: "kvm" | "qemu"

    @property
    def mgmt_address(self) -> str:
        return self.mgmt_ip.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class LabPlan:
    switches: tuple[SwitchPlan, ...]
    hosts: tuple[HostPlan, ...]
    links: tuple[VethPair, ...]
    mgmt_subnet: str  # "10.255.0.0/24"
    mgmt_gateway: str  # "10.255.0.1/24", on the management bridge
    bridge: str = MGMT_BRIDGE
    skipped: tuple[tuple[str, str], ...] = field(default=())  # (name, reason)
    mgmt_namespace: str | None = None  # where the bridge lives (None: the root namespace)
    # a left-out host's (only its uplink NIC) and OUT_OF_SLICE's: no daemons, no management
    stub_namespaces: tuple[str, ...] = ()

    @property
    def namespaces(self) -> list[str]:
        """The switches' and hosts' namespaces (not the management namespace)."""
        return [s.namespace for s in self.switches] + [h.namespace for h in self.hosts] + list(self.stub_namespaces)

    @property
    def nodes(self) -> list[SwitchPlan | HostPlan]:
        """Everything with a management interface: switches, then hosts."""
        return [*self.switches, *self.hosts]

    def switch(self, name: str) -> SwitchPlan:
        for s in self.switches:
            if s.name == name:
                return s
        raise LabError(f"{name!r} is not a switch of this lab")

    def host(self, name: str) -> HostPlan:
        for h in self.hosts:
            if h.name == name:
                return h
        raise LabError(f"{name!r} is not a host of this lab")

    def fingerprint(self, namespace: str) -> str:
        """Changes when anything the plan builds in ``namespace`` changes (ports, addresses, management)."""
        parts = [self.mgmt_subnet, self.mgmt_gateway]
        parts += [f"{s.name}|{s.mgmt_ip}|{s.mgmt_veth}" for s in self.switches if s.namespace == namespace]
        parts += [f"{h.name}|{h.nic}|{h.mgmt_ip}|{h.mgmt_veth}" for h in self.hosts if h.namespace == namespace]
        for p in self.links:
            for mine, other in ((p.a, p.b), (p.b, p.a)):
                if mine.namespace == namespace:
                    parts.append(f"{mine.ifname}|{mine.address}|{mine.mtu}|{other.namespace}|{other.ifname}")
        return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]

    def ends_in(self, namespace: str) -> list[End]:
        """Every veth end the plan puts in ``namespace`` (fabric and host ports, not eth0)."""
        return [e for p in self.links for e in (p.a, p.b) if e.namespace == namespace]


def _check_ifname(name: str, where: str) -> str:
    if not _IFNAME.fullmatch(name):
        raise LabError(f"{where}: {name!r} is not a valid Linux interface name (1-{IFNAMSIZ} characters)")
    if name in (MGMT_IF, "lo"):
        raise LabError(f"{where}: port name {name!r} is reserved by the lab")
    return name


def _mgmt(
    name: str,
    mgmt_ip: ipaddress.IPv4Interface | ipaddress.IPv6Interface,
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network,
    seen_veth: dict[str, str],
    instance: Instance,
) -> tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, str]:
    """A node's management address (with the subnet's prefix) and bridge-side veth, both checked."""
    if mgmt_ip.ip not in subnet:
        raise LabError(f"{name}: mgmt_ip {mgmt_ip} is outside the management subnet {subnet}")
    veth = instance.mgmt_veth(name)
    if veth in seen_veth:
        raise LabError(f"{name} and {seen_veth[veth]} map to the same interface name {veth}")
    seen_veth[veth] = name
    return ipaddress.ip_interface(f"{mgmt_ip.ip}/{subnet.prefixlen}"), veth


def plan_lab(  # noqa: C901 - the plan's parts in order
    model: InfraModel,
    instance: Instance = PRODUCTION,
    *,
    only: frozenset[str] | None = None,
    hosts: bool | frozenset[str] = True,
) -> LabPlan:
    """The lab for ``model``: FRR switches, their fabric links, management, host uplinks.

    Switches of another platform (EOS) cannot run here; they are left out and listed in
    ``skipped``. ``instance`` names everything (the production lab or a twin); ``only`` keeps
    those switches (and the links between them). A kept switch's port to any switch left out
    (not in ``only``, or of another platform) still exists, since its rendered config names it: a
    ``stub`` veth whose far end is in the namespace :data:`OUT_OF_SLICE`, no address, no daemon.
    ``hosts=False`` leaves the hosts out (both listed in ``skipped``); a set of hosts builds those
    (each needs its leaf in the lab) and leaves the others out.
    """
    if only is not None and (unknown := only - set(model.devices)):
        raise LabError(f"not switches of the model: {', '.join(sorted(unknown))}")
    if not isinstance(hosts, bool) and (unknown := hosts - set(model.hosts)):
        raise LabError(f"not hosts of the model: {', '.join(sorted(unknown))}")
    ns = instance.namespace
    mgmt = model.fabric.management
    subnet = mgmt.subnet
    used = {d.mgmt_ip.ip for d in model.devices.values()} | {h.mgmt_ip.ip for h in model.hosts.values()}
    gateway = mgmt.gateway if mgmt.gateway is not None else next((h for h in subnet.hosts() if h not in used), None)
    if gateway is None:
        raise LabError(f"no free address for the lab's management gateway in {subnet}")
    if gateway in used:
        raise LabError(f"the management gateway {gateway} is also a switch's or host's mgmt_ip")
    skipped: list[tuple[str, str]] = []
    switches: list[SwitchPlan] = []
    seen_veth: dict[str, str] = {}
    for d in sorted(model.devices.values(), key=lambda d: d.name):
        if d.platform != "frr":
            skipped.append((d.name, f"platform {d.platform} cannot run in the lab (FRR switches only)"))
            continue
        if only is not None and d.name not in only:
            skipped.append((d.name, "not in the slice"))
            continue
        ip, veth = _mgmt(d.name, d.mgmt_ip, subnet, seen_veth, instance)
        switches.append(SwitchPlan(d.name, d.role, ns(d.name), str(ip), veth))
    in_lab = {s.name for s in switches}
    left_out = dict(skipped)  # switch -> why it is not built (not in the slice, its platform)
    links: list[VethPair] = []
    stubs: list[str] = []
    for link in model.links:
        if link.spine.device not in in_lab or link.leaf.device not in in_lab:
            for mine, other in ((link.spine, link.leaf), (link.leaf, link.spine)):
                if mine.device in in_lab and other.device not in in_lab:  # not built, whatever the reason
                    out = ns(OUT_OF_SLICE)
                    stubs += [] if out in stubs else [out]
                    links.append(
                        VethPair(
                            "stub",
                            End(ns(mine.device), _check_ifname(mine.port, mine.device), str(mine.ip), link.mtu),
                            End(out, f"o{len(links)}", None, link.mtu),
                            f"{mine.device}:{mine.port}--{other.device} ({left_out.get(other.device, 'not built')})",
                        )
                    )
            continue
        a, b = link.spine, link.leaf
        links.append(
            VethPair(
                "fabric",
                End(ns(a.device), _check_ifname(a.port, a.device), str(a.ip), link.mtu),
                End(ns(b.device), _check_ifname(b.port, b.device), str(b.ip), link.mtu),
                link.key,
            )
        )
    host_plans: list[HostPlan] = []
    for h in sorted(model.hosts.values(), key=lambda h: h.name):
        build = hosts if isinstance(hosts, bool) else h.name in hosts
        if h.uplink.leaf not in in_lab:
            if build and not isinstance(hosts, bool):
                raise LabError(f"host {h.name}: its leaf {h.uplink.leaf} is not in the lab")
            skipped.append((h.name, f"its leaf {h.uplink.leaf} is not in the lab"))
            continue
        port, nic = _check_ifname(h.uplink.port, h.uplink.leaf), _check_ifname(h.uplink.nic, h.name)
        links.append(
            VethPair(
                "host" if build else "stub",
                End(ns(h.uplink.leaf), port, None, model.fabric.mtu),
                End(ns(h.name), nic, None, h.uplink.mtu),
                f"{h.uplink.leaf}:{port}--{h.name}:{nic}",
            )
        )
        if not build:  # the leaf's port still exists (a deploy configures it), cabled to the host's NIC alone
            skipped.append((h.name, "hosts are left out (its uplink NIC is kept)"))
            stubs.append(ns(h.name))
            continue
        ip, veth = _mgmt(h.name, h.mgmt_ip, subnet, seen_veth, instance)
        host_plans.append(HostPlan(h.name, ns(h.name), nic, h.uplink.leaf, port, h.kind, str(ip), veth, h.domain_type))
    names = Counter(
        [s.namespace for s in switches]
        + [h.namespace for h in host_plans]
        + stubs
        + ([instance.mgmt_namespace] if instance.mgmt_namespace else [])
    )
    dup = {n for n, k in names.items() if k > 1}
    if dup:
        raise LabError(f"switches, hosts and the management namespace share names: {', '.join(sorted(dup))}")
    ends = Counter((e.namespace, e.ifname) for p in links for e in (p.a, p.b))
    clash = {f"{ns}:{i}" for (ns, i), k in ends.items() if k > 1}
    if clash:
        raise LabError(f"ports used by more than one link: {', '.join(sorted(clash))}")
    return LabPlan(
        switches=tuple(switches),
        hosts=tuple(host_plans),
        links=tuple(links),
        mgmt_subnet=str(subnet),
        mgmt_gateway=f"{gateway}/{subnet.prefixlen}",
        bridge=instance.bridge,
        skipped=tuple(skipped),
        mgmt_namespace=instance.mgmt_namespace,
        stub_namespaces=tuple(stubs),
    )
