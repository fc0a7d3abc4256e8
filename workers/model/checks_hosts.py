"""Semantic checks of hypervisors: cabling, tunnels, MTU budget. Fills ``draft.r_hosts``."""

from __future__ import annotations

from lintas.workers.model.draft import Draft
from lintas.workers.model.model import Host, Network
from lintas.workers.model.overhead import overhead
from lintas.workers.model.schema_fabric import FabricSettings
from lintas.workers.model.schema_hosts import HostSpec
from lintas.workers.model.source import Origin, PathPart

MIN_OVERLAY_MTU = 1280


def check_hosts(draft: Draft, fabric: FabricSettings) -> None:
    tunnel_ips: dict[object, tuple[str, Origin]] = {}
    for name, spec in draft.hosts.items():
        origin = draft.origin("host", name)
        _check_uplink(draft, name, spec)
        ip = spec.uplink.tunnel_ip.ip
        if (first := tunnel_ips.get(ip)) is not None:
            draft.add(
                "host",
                name,
                f"duplicate tunnel IP {ip}: already used by '{first[0]}' ({first[1].where('uplink', 'tunnel_ip')})",
                "uplink",
                "tunnel_ip",
            )
        else:
            tunnel_ips[ip] = (name, origin)
        if spec.ovn is not None:
            if spec.ovn.encap_ip is not None and spec.ovn.encap_ip != ip:
                draft.add(
                    "host",
                    name,
                    f"ovn.encap_ip {spec.ovn.encap_ip} differs from the tunnel IP {ip} of the uplink",
                    "ovn",
                    "encap_ip",
                )
            bridges = set(spec.ovs.bridges)
            for physnet, bridge in spec.ovn.bridge_mappings.items():
                if bridge not in bridges:
                    draft.add(
                        "host",
                        name,
                        f"bridge mapping '{physnet}' names bridge '{bridge}', which is not in ovs.bridges",
                        "ovn",
                        "bridge_mappings",
                        physnet,
                    )
        _check_mtu(draft, fabric, name, spec)
    mesh = [n for n, s in draft.hosts.items() if s.tunnels is not None]
    for name, spec in draft.hosts.items():
        draft.r_hosts[name] = _resolve(draft, name, spec, mesh)


def _check_uplink(draft: Draft, name: str, spec: HostSpec) -> None:
    up = spec.uplink
    leaf = draft.devices.get(up.leaf)
    if leaf is None:
        if not draft.is_broken("device", up.leaf):
            draft.add("host", name, f"unknown leaf '{up.leaf}'", "uplink", "leaf")
        leaf_name = None
    elif leaf.role != "leaf":
        draft.add("host", name, f"'{up.leaf}' is a {leaf.role}; hosts are cabled to leaves", "uplink", "leaf")
        leaf_name = None
    else:
        leaf_name = leaf.name
        if up.port not in draft.ports[leaf_name]:
            draft.add("host", name, f"device '{leaf_name}' has no port '{up.port}'", "uplink", "port")
        else:
            draft.use_port(leaf_name, up.port, f"host '{name}'", draft.origin("host", name), "uplink", "port")
    tunnel = _carried(draft, name, up.tunnel_network, leaf_name, ("uplink", "tunnel_network"))
    if tunnel is not None:
        subnet = tunnel.gateway.network
        if up.tunnel_ip.ip not in subnet:
            draft.add(
                "host",
                name,
                f"tunnel IP {up.tunnel_ip} is outside the subnet {subnet} of network '{tunnel.name}'",
                "uplink",
                "tunnel_ip",
            )
        elif up.tunnel_ip.ip == tunnel.gateway.ip:
            draft.add(
                "host",
                name,
                f"tunnel IP {up.tunnel_ip.ip} is the anycast gateway of network '{tunnel.name}'",
                "uplink",
                "tunnel_ip",
            )
    for index, network in enumerate(up.networks):
        _carried(draft, name, network, leaf_name, ("uplink", "networks", index))


def _carried(draft: Draft, host: str, network: str, leaf: str | None, sub: tuple[PathPart, ...]) -> Network | None:
    """The resolved network, after checking it exists and reaches the host's leaf."""
    net = draft.r_networks.get(network)
    if net is None:
        if network not in draft.networks and not draft.is_broken("network", network):
            draft.add("host", host, f"unknown network '{network}'", *sub)
        return None
    if leaf is not None and leaf not in net.leaves:
        draft.add(
            "host",
            host,
            f"network '{network}' is not carried on leaf '{leaf}' (add the leaf to the network's leaves)",
            *sub,
        )
    return net


def _encap(spec: HostSpec) -> tuple[int, str]:
    version = spec.uplink.tunnel_ip.version
    encap = "vxlan" if spec.ovn is not None and spec.ovn.encap_type == "vxlan" else "geneve"
    label = f"{'VXLAN' if encap == 'vxlan' else 'Geneve'} over IPv{version}"
    return overhead(encap, version), label  # type: ignore[arg-type]


def _check_mtu(draft: Draft, fabric: FabricSettings, name: str, spec: HostSpec) -> None:
    """fabric MTU >= tunnel network MTU >= uplink MTU >= overlay MTU + encapsulation."""
    up = spec.uplink
    if up.mtu > fabric.mtu:
        draft.add("host", name, f"MTU budget: uplink MTU {up.mtu} exceeds the fabric MTU {fabric.mtu}", "uplink", "mtu")
    tunnel = draft.r_networks.get(up.tunnel_network)
    if tunnel is not None and up.mtu > tunnel.mtu:
        draft.add(
            "host",
            name,
            f"MTU budget: uplink MTU {up.mtu} exceeds the MTU {tunnel.mtu} of tunnel network '{tunnel.name}'",
            "uplink",
            "mtu",
        )
    extra, label = _encap(spec)
    if spec.overlay_mtu is not None:
        if spec.overlay_mtu + extra > up.mtu:
            draft.add(
                "host",
                name,
                f"MTU budget: overlay MTU {spec.overlay_mtu} + {extra} bytes of {label} = {spec.overlay_mtu + extra} "
                f"exceeds the uplink MTU {up.mtu}",
                "overlay_mtu",
            )
    elif up.mtu - extra < MIN_OVERLAY_MTU:
        draft.add(
            "host",
            name,
            f"MTU budget: uplink MTU {up.mtu} leaves {up.mtu - extra} bytes for the overlay after {extra} bytes "
            f"of {label} (at least {MIN_OVERLAY_MTU} needed)",
            "uplink",
            "mtu",
        )


def _resolve(draft: Draft, name: str, spec: HostSpec, mesh: list[str]) -> Host:
    peers: tuple[str, ...] = ()
    if spec.tunnels is not None:
        if spec.tunnels.peers == "all":
            peers = tuple(p for p in mesh if p != name)
        else:
            peers = tuple(_check_peers(draft, name, spec.tunnels.peers))
    extra, _label = _encap(spec)
    defaults, cap = draft.host_defaults, spec.capacity
    return Host(
        name=name,
        kind=spec.kind,
        mgmt_ip=spec.mgmt_ip,
        libvirt_uri=spec.libvirt_uri,
        domain_type=spec.domain_type,
        ovs=spec.ovs,
        uplink=spec.uplink,
        tunnels=spec.tunnels,
        ovn=spec.ovn,
        capacity=cap,
        cpu_allocation_ratio=cap.cpu_allocation_ratio or defaults.cpu_allocation_ratio,
        ram_allocation_ratio=cap.ram_allocation_ratio or defaults.ram_allocation_ratio,
        encap_overhead=extra,
        overlay_mtu=spec.overlay_mtu or spec.uplink.mtu - extra,
        peers=peers,
        description=spec.description,
    )


def _check_peers(draft: Draft, name: str, listed: list[str]) -> list[str]:
    out: list[str] = []
    for index, peer in enumerate(listed):
        sub = ("tunnels", "peers", index)
        other = draft.hosts.get(peer)
        if other is None:
            if not draft.is_broken("host", peer):
                draft.add("host", name, f"unknown host '{peer}'", *sub)
        elif peer == name:
            draft.add("host", name, "a host cannot be its own tunnel peer", *sub)
        elif other.tunnels is None:
            draft.add("host", name, f"peer '{peer}' uses OVN chassis settings, not plain geneve tunnels", *sub)
        else:
            out.append(peer)
    return out
