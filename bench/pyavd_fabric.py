"""The Lintas generated fabric, re-expressed as Arista AVD ``eos_designs`` inputs.

Used by :mod:`bench.pyavd_compare` only (pyavd is a benchmark-only dependency).

:func:`avd_inputs` reads a loaded :class:`~workers.model.InfraModel` and returns the
per-device AVD hostvars (``{hostname: inputs}``) of the *same* fabric:

* ``spine`` node type: the model's spines, same ids, management IPs and spine ASN;
* ``l3leaf`` node type: one standalone node per leaf (``mlag: false``, no node groups),
  same ids, management IPs and leaf ASNs as the model derived, uplinks to every spine on
  the same leaf and spine ports as ``fabric/links.yaml``;
* pools: the model's loopback, VTEP and p2p pools (``loopback_ipv4_pool``,
  ``vtep_loopback_ipv4_pool``, ``uplink_ipv4_pool``); AVD derives the addresses from the
  node ids as the model does, but with its own p2p numbering (so the /31s differ);
* eBGP underlay + eBGP EVPN overlay (AVD's L3LS EVPN defaults), loopback-sourced EVPN
  peerings leaf<->spine, spines as route servers (``next-hop-unchanged``), BFD multihop
  300/300/3, ``ebgp-multihop 3``, peer-group passwords, ``maximum-paths 4 ecmp 4``;
* one tenant holding the model's VRFs (``vrf_vni`` = the L3 VNI) and networks as SVIs
  (VLAN id, name, anycast ``ip_address_virtual``, MTU; VNI = ``mac_vrf_vni_base`` + VLAN,
  ``vni_override`` where the model's VNI differs). Each SVI is tagged with the group of
  leaves that carries it and each leaf filters on the tags of its own networks, so every
  leaf gets exactly the VLANs/VNIs/VRFs the model puts on it;
* route targets ``<spine ASN>:<VNI>`` for MAC-VRFs and ``<spine ASN>:<L3 VNI>`` for
  IP-VRFs, as the Lintas renderer writes them; RDs ``<router-id>:<VLAN>`` for MAC-VRFs,
  ``<router-id>:<L3 VNI>`` for IP-VRFs (ours: ``<router-id>:<L3 VLAN>``; AVD has no
  knob for that, which changes nothing feature-wise);
* anycast gateway MAC, MTU 9216 on fabric links, management interface in the model's
  management VRF with its default route, eAPI over HTTPS in that VRF, spanning tree
  MSTP priority 4096 on leaves.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from lintas.workers.model import InfraModel

# A Type 7 string as AVD expects for peer-group passwords (ours renders a secret token).
PASSWORD_TYPE7 = "AQQvKeimxJu+uGQ/yYvv9w=="
TENANT = "LINTAS"
MAC_VRF_VNI_BASE = 10000


def avd_inputs(model: InfraModel, fabric_name: str = "LINTAS_GEN") -> dict[str, dict[str, Any]]:
    """``{hostname: AVD eos_designs inputs}`` for every switch of ``model``."""
    fs = model.fabric
    devices = sorted(model.devices.values(), key=lambda d: d.id)
    spines = [d for d in devices if d.role == "spine"]
    leaves = [d for d in devices if d.is_leaf]
    spine_asns = {d.asn for d in spines}
    if len(spine_asns) != 1:
        raise ValueError(f"AVD spine defaults expect one spine ASN, the model has {sorted(spine_asns)}")
    spine_asn = spine_asns.pop()
    rt_admin = spine_asn if spine_asn <= 0xFFFF else spine_asn & 0xFFFF
    spine_names = [s.name for s in spines]

    # networks per group of leaves -> one tag per distinct leaf set
    tag_of: dict[tuple[str, ...], str] = {}
    leaf_tags: dict[str, set[str]] = defaultdict(set)
    for net in model.networks.values():
        members = tuple(sorted(net.leaves))
        tag = tag_of.setdefault(members, f"grp{len(tag_of) + 1}")
        for member in members:
            leaf_tags[member].add(tag)

    # uplinks: leaf port / spine port per spine, from the links
    uplinks: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    for link in model.links:
        uplinks[link.leaf.device][link.spine.device] = (link.leaf.port, link.spine.port)

    leaf_nodes = []
    for leaf in leaves:
        ups = uplinks[leaf.name]
        missing = [s for s in spine_names if s not in ups]
        if missing:
            raise ValueError(f"{leaf.name} has no link to {missing}: AVD uplink lists need one per spine")
        leaf_nodes.append(
            {
                "name": leaf.name,
                "id": leaf.id,
                "mgmt_ip": str(leaf.mgmt_ip),
                "bgp_as": str(leaf.asn),
                "uplink_interfaces": [ups[s][0] for s in spine_names],
                "uplink_switch_interfaces": [ups[s][1] for s in spine_names],
                # a leaf without networks filters on a tag no SVI carries
                "filter": {"tags": sorted(leaf_tags.get(leaf.name, ())) or ["none"]},
            }
        )

    vrf_svis: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for net in sorted(model.networks.values(), key=lambda n: n.vlan):
        svi: dict[str, Any] = {
            "id": net.vlan,
            "name": net.name,
            "enabled": True,
            "ip_address_virtual": str(net.gateway),
            "mtu": net.mtu,
            "tags": [tag_of[tuple(sorted(net.leaves))]],
        }
        if net.description:
            svi["description"] = net.description
        if net.vni != MAC_VRF_VNI_BASE + net.vlan:
            svi["vni_override"] = net.vni
        vrf_svis[net.vrf].append(svi)
    vrfs = [
        {"name": v.name, "vrf_vni": v.l3_vni, "svis": vrf_svis[v.name]}
        for v in sorted(model.vrfs.values(), key=lambda v: v.l3_vni)
        if vrf_svis.get(v.name)  # AVD drops VRFs without services on a device anyway
    ]

    mgmt = fs.management
    common: dict[str, Any] = {
        "fabric_name": fabric_name,
        "underlay_routing_protocol": "ebgp",
        "overlay_routing_protocol": "ebgp",
        "mgmt_interface": "Management1",
        "mgmt_interface_vrf": mgmt.vrf,
        "p2p_uplinks_mtu": fs.mtu,
        "bgp_maximum_paths": fs.underlay.maximum_paths,
        "bgp_ecmp": fs.underlay.maximum_paths,
        "evpn_ebgp_multihop": 3,
        "bfd_multihop": {"interval": 300, "min_rx": 300, "multiplier": 3},
        "management_eapi": {"enabled": True, "enable_https": True},
        "bgp_peer_groups": {
            "ipv4_underlay_peers": {"password": PASSWORD_TYPE7, "maximum_routes": 12000},
            "evpn_overlay_peers": {"password": PASSWORD_TYPE7},
        },
        "overlay_rt_type": {
            "admin_subfield": str(rt_admin),
            "vrf_admin_subfield": str(rt_admin),
            "vlan_assigned_number_subfield": "mac_vrf_vni",
        },
        "overlay_rd_type": {"admin_subfield": "router_id", "vlan_assigned_number_subfield": "vlan_id"},
        "spine": {
            "defaults": {
                "bgp_as": str(spine_asn),
                "loopback_ipv4_pool": str(fs.pools.loopbacks),
            },
            "nodes": [{"name": s.name, "id": s.id, "mgmt_ip": str(s.mgmt_ip)} for s in spines],
        },
        "l3leaf": {
            "defaults": {
                "loopback_ipv4_pool": str(fs.pools.loopbacks),
                "vtep_loopback_ipv4_pool": str(fs.pools.vteps),
                "uplink_ipv4_pool": str(fs.pools.p2p),
                "uplink_switches": spine_names,
                "max_uplink_switches": len(spine_names),
                "mlag": False,
                "virtual_router_mac_address": str(fs.overlay.anycast_gateway_mac),
                "spanning_tree_mode": "mstp",
                "spanning_tree_priority": 4096,
            },
            "nodes": leaf_nodes,
        },
        "tenants": [{"name": TENANT, "mac_vrf_vni_base": MAC_VRF_VNI_BASE, "vrfs": vrfs}],
    }
    if mgmt.gateway is not None:
        common["mgmt_gateway"] = str(mgmt.gateway)
    out: dict[str, dict[str, Any]] = {}
    for d in devices:
        out[d.name] = {**common, "type": "spine" if d.role == "spine" else "l3leaf"}
    return out
