"""Generate a valid infra repo of any size, shaped like ``gitops-repo-template``.

Used by benchmarks and scale tests::

    files = generate_fabric(1000, vnis_per_leaf=20, n_hosts=200, n_instances=2000)
    model = load_model_texts(files)

Leaves are grouped (pairs for small fabrics, larger groups as the fabric grows
so that the VLAN space of 4094 is never exceeded); each group carries
``vnis_per_leaf`` networks of its own. Hosts are spread over the leaves' host
ports, alternating plain-KVM (geneve mesh) and OpenStack (OVN) kinds.
"""

from __future__ import annotations

import ipaddress
import math
import uuid
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """No anchors/aliases: shared lists are written out (the loader caps alias use)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


MAX_NETWORKS = 3000  # VLANs 10..3009; 3500 is the tunnel network, 3900+ the L3 VLANs
HOST_PORTS = 48
VRFS = ("TENANT-A", "TENANT-B", "TENANT-C", "TENANT-D")
_NS = uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")


def _dump(data: Any) -> str:
    return str(yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=200))


def _prefix_for(count: int, base: str) -> str:
    """Smallest IPv4 prefix at ``base`` with ``count`` usable addresses after the network address."""
    bits = max(2, math.ceil(math.log2(count + 2)))
    if bits > 16:
        raise ValueError(f"{count} addresses do not fit the generator's /16 blocks")
    return f"{base}/{32 - bits}"


def _port_ranges(prefix: str, first: int, last: int, chunk: int = 1024) -> list[str]:
    return [f"{prefix}{a}-{min(a + chunk - 1, last)}" for a in range(first, last + 1, chunk)]


def generate_fabric(
    n_leaves: int,
    n_spines: int = 2,
    vnis_per_leaf: int = 20,
    n_hosts: int = 0,
    n_instances: int = 0,
) -> dict[str, str]:
    """``{relative path: YAML text}`` of a repo that validates without errors."""
    if n_leaves < 1 or n_spines < 1 or vnis_per_leaf < 0 or n_hosts < 0 or n_instances < 0:
        raise ValueError("counts must be positive")
    if n_hosts > n_leaves * HOST_PORTS:
        raise ValueError(f"{n_hosts} hosts do not fit {n_leaves} leaves x {HOST_PORTS} host ports")
    if n_instances and not n_hosts:
        raise ValueError("instances need hosts")
    width = max(2, len(str(max(n_leaves, n_spines, n_hosts))))
    spines = [f"spine-{i:0{width}d}" for i in range(1, n_spines + 1)]
    leaves = [f"leaf-{i:0{width}d}" for i in range(1, n_leaves + 1)]
    leaf_base = max(10, n_spines)
    max_id = leaf_base + n_leaves
    mgmt_net = ipaddress.ip_network(_prefix_for(n_spines + n_leaves + n_hosts + 20, "10.255.0.0"))
    mgmt, mplen = mgmt_net.network_address, mgmt_net.prefixlen
    fabric = {
        "fabric": {
            "name": "gen",
            "mtu": 9216,
            "management": {"subnet": str(mgmt_net), "gateway": str(mgmt + 1)},
            "pools": {
                "loopbacks": _prefix_for(max_id, "10.200.0.0"),
                "vteps": _prefix_for(max_id, "10.201.0.0"),
                "p2p": _prefix_for(2 * (max_id + 1) * n_spines, "10.202.0.0"),
                "p2p_per_leaf": n_spines,
                "leaf_asns": f"65100-{65100 + max_id}"
                if 65100 + max_id < 65535
                else f"4200000000-{4200000000 + max_id}",
            },
            "underlay": {"spine_asn": 65000, "password": "env:FABRIC_BGP_PASSWORD"},
            "overlay": {"anycast_gateway_mac": "00:1c:73:00:00:99"},
        }
    }
    devices: list[dict[str, Any]] = []
    for i, name in enumerate(spines, start=1):
        devices.append(
            {
                "name": name,
                "role": "spine",
                "platform": "frr",
                "id": i,
                "mgmt_ip": f"{mgmt + 10 + i}/{mplen}",
                "ports": _port_ranges("swp", 1, max(32, n_leaves)),
            }
        )
    for i, name in enumerate(leaves, start=1):
        devices.append(
            {
                "name": name,
                "role": "leaf",
                "platform": "frr",
                "id": leaf_base + i,
                "mgmt_ip": f"{mgmt + 10 + n_spines + i}/{mplen}",
                "ports": ["swp1-48", f"swp51-{50 + n_spines}"],
            }
        )
    links = [
        {"a": {"device": spine, "port": f"swp{li}"}, "b": {"device": leaf, "port": f"swp{50 + si}"}}
        for li, leaf in enumerate(leaves, start=1)
        for si, spine in enumerate(spines, start=1)
    ]
    tenants, leaf_networks = _tenants(leaves, vnis_per_leaf, n_hosts)
    files = {
        "fabric/fabric.yaml": _dump(fabric),
        "fabric/devices.yaml": _dump({"devices": devices}),
        "fabric/links.yaml": _dump({"links": links}),
        "fabric/tenants.yaml": _dump(tenants),
    }
    hosts = _hosts(leaves, leaf_networks, n_hosts, mgmt + 10 + n_spines + n_leaves, mplen)
    files["hosts/hosts.yaml"] = _dump(
        {"defaults": {"cpu_allocation_ratio": 4.0, "ram_allocation_ratio": 1.0}, "hosts": hosts}
    )
    files["hosts/flavors.yaml"] = _dump({"flavors": FLAVORS})
    files["hosts/instances.yaml"] = _dump({"instances": _instances(hosts, n_instances)})
    files.update(_inventory(devices, hosts))
    return files


FLAVORS = [
    {"name": "m1.tiny3.migrate", "vcpus": 2, "ram_mib": 8192, "disk_gb": 80, "swap_mib": 0},
    {"name": "lab.nano", "vcpus": 1, "ram_mib": 64, "disk_gb": 1},
]


def _tenants(leaves: list[str], per_leaf: int, n_hosts: int) -> tuple[dict[str, Any], dict[str, list[str]]]:
    group = max(2, math.ceil(len(leaves) * per_leaf / MAX_NETWORKS)) if per_leaf else len(leaves)
    vrfs = [{"name": "INFRA", "l3_vni": 50000, "l3_vlan": 3900}]
    vrfs += [{"name": v, "l3_vni": 50001 + i, "l3_vlan": 3901 + i} for i, v in enumerate(VRFS)]
    networks: list[dict[str, Any]] = []
    if n_hosts:
        networks.append(
            {
                "name": "infra-tunnel",
                "vrf": "INFRA",
                "vlan": 3500,
                "vni": 13500,
                "gateway": "10.20.0.1/" + _prefix_for(n_hosts + 2, "10.20.0.0").split("/")[1],
                "mtu": 9000,
                "leaves": "all",
            }
        )
    leaf_networks: dict[str, list[str]] = {leaf: [] for leaf in leaves}
    base = int(ipaddress.ip_address("10.32.0.0"))
    k = 0
    for start in range(0, len(leaves), group):
        members = leaves[start : start + group]
        for _ in range(per_leaf):
            vlan = 10 + k
            name = f"net-{vlan}"
            networks.append(
                {
                    "name": name,
                    "vrf": VRFS[k % len(VRFS)],
                    "vlan": vlan,
                    "vni": 10000 + vlan,
                    "gateway": f"{ipaddress.ip_address(base + k * 256 + 1)}/24",
                    "mtu": 9000,
                    "leaves": members,
                }
            )
            for leaf in members:
                leaf_networks[leaf].append(name)
            k += 1
    return {"vrfs": vrfs, "networks": networks}, leaf_networks


def _hosts(
    leaves: list[str], leaf_networks: dict[str, list[str]], n_hosts: int, mgmt: Any, mplen: int
) -> list[dict[str, Any]]:
    width = max(2, len(str(n_hosts)))
    tunnel_base = ipaddress.ip_address("10.20.0.0")
    plen = _prefix_for(n_hosts + 2, "10.20.0.0").split("/")[1]
    hosts: list[dict[str, Any]] = []
    for j in range(n_hosts):
        leaf = leaves[j % len(leaves)]
        kvm = j % 2 == 0
        name = f"{'kvm' if kvm else 'osc'}-{j + 1:0{width}d}"
        tunnel_ip = tunnel_base + 2 + j
        host: dict[str, Any] = {
            "name": name,
            "kind": "kvm" if kvm else "openstack",
            "mgmt_ip": f"{mgmt + 1 + j}/{mplen}",
            "libvirt_uri": f"qemu+ssh://lintas@{mgmt + 1 + j}/system",
            "ovs": {"datapath_type": "system"} if kvm else {"bridges": ["br-provider"]},
            "uplink": {
                "leaf": leaf,
                "port": f"swp{1 + j // len(leaves)}",
                "nic": "ens1f0",
                "mtu": 9000,
                "tunnel_network": "infra-tunnel",
                "tunnel_ip": f"{tunnel_ip}/{plen}",
                "networks": leaf_networks[leaf][:2],
            },
            "capacity": {"vcpus": 64, "memory_mib": 524288, "reserved_memory_mib": 16384},
        }
        if kvm:
            host["tunnels"] = {"type": "geneve", "key": "flow", "csum": True, "peers": "all"}
        else:
            host["ovn"] = {
                "encap_type": "geneve",
                "encap_ip": str(tunnel_ip),
                "remote": "ssl:10.255.0.5:6642",
                "bridge_mappings": {"physnet1": "br-provider"},
            }
        hosts.append(host)
    return hosts


def _instances(hosts: list[dict[str, Any]], n_instances: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n_instances):
        host = hosts[i % len(hosts)]
        nets = host["uplink"]["networks"] or []
        inst: dict[str, Any] = {
            "name": f"vm-{i + 1:05d}",
            "uuid": str(uuid.uuid5(_NS, f"vm-{i + 1}.lintas")),
            "flavor": FLAVORS[i % 2]["name"],
            "host": host["name"],
            "state": "running",
            "project": f"project-{i % 50:02d}",
            "owner": f"team-{i % 20:02d}",
            "nics": [],
        }
        if nets:
            mac = f"fa:16:3e:{(i >> 16) & 0xFF:02x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"
            inst["nics"].append({"network": nets[i % len(nets)], "mac": mac})
        out.append(inst)
    return out


def _inventory(devices: list[dict[str, Any]], hosts: list[dict[str, Any]]) -> dict[str, str]:
    inv: dict[str, Any] = {}
    for d in devices:
        inv[d["name"]] = {"hostname": d["mgmt_ip"].split("/")[0], "groups": [d["role"], "frr"]}
    for h in hosts:
        inv[h["name"]] = {"hostname": h["mgmt_ip"].split("/")[0], "groups": [h["kind"]]}
    groups: dict[str, Any] = {g: {} for g in ("spine", "leaf", "frr", "kvm", "openstack")}
    defaults = {"username": "lintas", "password": "env:LINTAS_SSH_PASSWORD", "port": 22}
    return {
        "inventory/hosts.yaml": _dump(inv),
        "inventory/groups.yaml": _dump(groups),
        "inventory/defaults.yaml": _dump(defaults),
    }
