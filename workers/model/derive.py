"""Resolve derived values: loopbacks, VTEPs, ASNs, router-ids and p2p /31s.

Explicit values in the repo win over derived ones. A pool that cannot serve an
id is reported as *exhausted* (a distinct error, pointing at the id or link that
needed it), and the device is left out of further checks.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from functools import lru_cache

from lintas.workers.model.draft import Draft
from lintas.workers.model.model import Device, Link, LinkEnd
from lintas.workers.model.pools import asn_count, nth_address, nth_asn, nth_p2p, p2p_blocks, usable_addresses
from lintas.workers.model.primitives import IPInterface, IPNetwork, expand_ports
from lintas.workers.model.schema_fabric import DeviceSpec, FabricSettings, LinkSpec
from lintas.workers.model.source import Origin


def derive_devices(draft: Draft, fabric: FabricSettings) -> None:
    for name, spec in draft.devices.items():
        ports = tuple(expand_ports(spec.ports))
        draft.ports[name] = frozenset(ports)
        device = _derive_device(draft, fabric, spec, ports)
        if device is None:
            draft.broken["device"].add(name)
        else:
            draft.r_devices[name] = device


def _derive_device(draft: Draft, fabric: FabricSettings, spec: DeviceSpec, ports: tuple[str, ...]) -> Device | None:
    pools, add, ok = fabric.pools, draft.add, True
    loopback = spec.loopback or nth_address(pools.loopbacks, spec.id)
    if loopback is None:
        add("device", spec.name, _exhausted("loopbacks", pools.loopbacks, spec.id), "id")
        ok = False
    vtep = None
    if spec.role == "leaf":
        vtep = spec.vtep_ip or nth_address(pools.vteps, spec.id)
        if vtep is None:
            add("device", spec.name, _exhausted("vteps", pools.vteps, spec.id), "id")
            ok = False
    asn = spec.asn
    if asn is None:
        if spec.role == "spine":
            asn = fabric.underlay.spine_asn
        else:
            asn = nth_asn(pools.leaf_asns, spec.id)
            if asn is None:
                r = pools.leaf_asns
                add(
                    "device",
                    spec.name,
                    f"pool exhausted: pools.leaf_asns {r} has {asn_count(r)} ASNs for ids 1-{asn_count(r)}; "
                    f"node id {spec.id} needs ASN {r.first + spec.id}",
                    "id",
                )
                ok = False
    router_id = spec.router_id
    if router_id is None and isinstance(loopback, ipaddress.IPv4Address):
        router_id = loopback
    if router_id is None and loopback is not None:
        add("device", spec.name, "router_id is required when the loopback is IPv6", "loopback")
        ok = False
    if not ok or loopback is None or asn is None or router_id is None:
        return None
    return Device(
        name=spec.name,
        role=spec.role,
        platform=spec.platform,
        id=spec.id,
        mgmt_ip=spec.mgmt_ip,
        ports=ports,
        asn=asn,
        loopback=loopback,
        router_id=router_id,
        vtep=vtep,
        description=spec.description,
    )


def _exhausted(key: str, pool: IPNetwork, node_id: int) -> str:
    n = usable_addresses(pool)
    return f"pool exhausted: pools.{key} {pool} has {n} usable addresses for ids 1-{n}; node id {node_id} is beyond it"


def derive_links(draft: Draft, fabric: FabricSettings) -> None:
    """Resolve every link's roles, ports and addresses; claims the ports it uses."""
    uplinks: defaultdict[str, int] = defaultdict(int)
    subnets: dict[IPNetwork, tuple[str, Origin]] = {}
    for spec, origin in draft.links:
        ends = _link_ends(draft, spec, origin)
        if ends is None:
            continue
        spine_side, leaf_side = ends
        leaf = draft.devices[getattr(spec, leaf_side).device]
        ordinal = uplinks[leaf.name]
        uplinks[leaf.name] += 1
        addresses = _addresses(draft, fabric, spec, origin, leaf, ordinal)
        if addresses is None:
            continue
        subnet, ip_a, ip_b = addresses
        ips = {"a": ip_a, "b": ip_b}
        s_end, l_end = getattr(spec, spine_side), getattr(spec, leaf_side)
        link = Link(
            spine=LinkEnd(s_end.device, s_end.port, ips[spine_side]),
            leaf=LinkEnd(l_end.device, l_end.port, ips[leaf_side]),
            subnet=subnet,
            mtu=fabric.mtu,
            description=spec.description,
        )
        first = subnets.get(subnet)
        if first is not None:
            where = ("subnet",) if spec.subnet is not None else ()
            draft.report.add(
                origin, f"p2p subnet {subnet} is already used by link {first[0]} ({first[1].where()})", *where
            )
            continue
        subnets[subnet] = (link.key, origin)
        draft.r_links.append((link, origin))


def _link_ends(draft: Draft, spec: LinkSpec, origin: Origin) -> tuple[str, str] | None:
    """(spine side, leaf side) as ``"a"``/``"b"``, after checking devices and ports."""
    ok = True
    roles: dict[str, str] = {}
    label = f"link {spec.a.device}:{spec.a.port}--{spec.b.device}:{spec.b.port}"
    for side in ("a", "b"):
        end = getattr(spec, side)
        device = draft.devices.get(end.device)
        if device is None:
            if not draft.is_broken("device", end.device):
                draft.report.add(origin, f"unknown device '{end.device}'", side, "device")
            ok = False
            continue
        roles[side] = device.role
        if end.port not in draft.ports[end.device]:
            draft.report.add(origin, f"device '{end.device}' has no port '{end.port}'", side, "port")
            ok = False
            continue
        draft.use_port(end.device, end.port, label, origin, side, "port")
    if not ok:
        return None
    if roles == {"a": "spine", "b": "leaf"}:
        return "a", "b"
    if roles == {"a": "leaf", "b": "spine"}:
        return "b", "a"
    draft.report.add(
        origin,
        f"a fabric link must connect a spine and a leaf, not {roles['a']} '{spec.a.device}' "
        f"and {roles['b']} '{spec.b.device}'",
        "b",
        "device",
    )
    return None


def _addresses(
    draft: Draft, fabric: FabricSettings, spec: LinkSpec, origin: Origin, leaf: DeviceSpec, ordinal: int
) -> tuple[IPNetwork, IPInterface, IPInterface] | None:
    """The link's /31 and both end addresses: explicit, partly explicit or derived."""
    add = draft.report.add
    if spec.subnet is not None and spec.subnet.prefixlen != spec.subnet.max_prefixlen - 1:
        add(origin, f"link subnet {spec.subnet} must be a /{spec.subnet.max_prefixlen - 1}", "subnet")
        return None
    given = {side: getattr(spec, side).ip for side in ("a", "b")}
    for side, ip in given.items():
        if ip is not None and ip.network.prefixlen != ip.max_prefixlen - 1:
            add(origin, f"link address {ip} must be a /{ip.max_prefixlen - 1}", side, "ip")
            return None
    ip_a, ip_b = given["a"], given["b"]
    if ip_a is not None and ip_b is not None:
        if ip_a.network != ip_b.network:
            add(origin, f"link ends are not in the same /{ip_a.network.prefixlen}: {ip_a} and {ip_b}", "b", "ip")
            return None
        if ip_a.ip == ip_b.ip:
            add(origin, f"both link ends have the address {ip_a.ip}", "b", "ip")
            return None
    known = ip_a or ip_b
    if known is not None:
        subnet: IPNetwork | None = known.network
        if spec.subnet is not None and spec.subnet != subnet:
            side = "a" if ip_a is not None and ip_a.network != spec.subnet else "b"
            add(origin, f"link address {given[side]} is outside the link subnet {spec.subnet}", side, "ip")
            return None
    elif spec.subnet is not None:
        subnet = spec.subnet
    else:
        subnet = _derived_subnet(draft, fabric, origin, leaf, ordinal)
    if subnet is None:
        return None
    if ip_a is None and ip_b is None:
        return (subnet, *_default_ends(subnet))
    low, high = subnet.network_address, subnet.network_address + 1
    plen = subnet.prefixlen
    if ip_a is None:
        ip_a = ipaddress.ip_interface((high if ip_b is not None and ip_b.ip == low else low, plen))
    if ip_b is None:
        ip_b = ipaddress.ip_interface((low if ip_a.ip == high else high, plen))
    return subnet, ip_a, ip_b


@lru_cache(maxsize=1 << 16)
def _default_ends(subnet: IPNetwork) -> tuple[IPInterface, IPInterface]:
    """The two addresses of a /31 (/127), low end first: a pure function of an immutable value,
    cached (a 1,000-leaf fabric would otherwise build 4,000 address objects on every load)."""
    low = subnet.network_address
    return ipaddress.ip_interface((low, subnet.prefixlen)), ipaddress.ip_interface((low + 1, subnet.prefixlen))


def _derived_subnet(
    draft: Draft, fabric: FabricSettings, origin: Origin, leaf: DeviceSpec, ordinal: int
) -> IPNetwork | None:
    pools = fabric.pools
    if ordinal >= pools.p2p_per_leaf:
        draft.report.add(
            origin,
            f"leaf '{leaf.name}' has more links than pools.p2p_per_leaf ({pools.p2p_per_leaf}) allows; "
            "raise p2p_per_leaf or give this link an explicit subnet",
        )
        return None
    block = leaf.id * pools.p2p_per_leaf + ordinal
    subnet = nth_p2p(pools.p2p, block)
    if subnet is None:
        draft.report.add(
            origin,
            f"pool exhausted: pools.p2p {pools.p2p} has {p2p_blocks(pools.p2p)} /{pools.p2p.max_prefixlen - 1} "
            f"subnets; leaf '{leaf.name}' (id {leaf.id}) needs number {block}",
        )
    return subnet
