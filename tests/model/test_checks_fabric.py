"""Each semantic check of the fabric has a failing fixture: message and location."""

from __future__ import annotations

import pytest

from .cases import Case, Edit, append
from .conftest import Repo

FAB, DEV, LNK, TEN = "fabric/fabric.yaml", "fabric/devices.yaml", "fabric/links.yaml", "fabric/tenants.yaml"
HOSTS, INV = "hosts/hosts.yaml", "inventory/hosts.yaml"


def device(name: str, node_id: int, mgmt: str, extra: str = "") -> str:
    return (
        f"\n  - name: {name}\n    role: leaf\n    platform: frr\n    id: {node_id}\n"
        f"    mgmt_ip: {mgmt}\n    ports: [swp1-48, swp51-52]\n{extra}"
    )


def on_leaf02(line: str) -> Edit:
    """Add an explicit override to leaf-02."""
    return Edit(DEV, "    id: 12\n", f"    id: 12\n    {line}\n")


CASES = {
    "duplicate hostname (devices)": Case(
        (append(DEV, device("spine-01", 5, "10.255.0.25/24")),),
        DEV,
        "name: spine-01",
        "duplicate hostname 'spine-01' (first defined at fabric/devices.yaml:{line:fabric/devices.yaml|name: spine-01})",
        nth=2,
    ),
    "duplicate node id": Case(
        (append(DEV, device("leaf-05", 11, "10.255.0.25/24")),),
        DEV,
        "id: 11",
        "duplicate node id 11: already used by 'leaf-01' (fabric/devices.yaml:{line:fabric/devices.yaml|id: 11})",
        nth=2,
    ),
    "duplicate router-id": Case(
        (on_leaf02("router_id: 10.250.0.11"),),
        DEV,
        "router_id: 10.250.0.11",
        "duplicate router-id 10.250.0.11: already used by 'leaf-01' (fabric/devices.yaml:{line:fabric/devices.yaml|id: 11})",
    ),
    "duplicate loopback": Case(
        (on_leaf02("loopback: 10.250.0.11"),),
        DEV,
        "loopback: 10.250.0.11",
        "duplicate loopback 10.250.0.11: already used by 'leaf-01' (fabric/devices.yaml:{line:fabric/devices.yaml|id: 11})",
    ),
    "duplicate VTEP IP": Case(
        (on_leaf02("vtep_ip: 10.250.1.11"),),
        DEV,
        "vtep_ip: 10.250.1.11",
        "duplicate VTEP IP 10.250.1.11: already used by 'leaf-01' (fabric/devices.yaml:{line:fabric/devices.yaml|id: 11})",
    ),
    "VTEP IP is another device's loopback": Case(
        (on_leaf02("vtep_ip: 10.250.0.13"),),
        DEV,
        "vtep_ip: 10.250.0.13",
        "VTEP IP 10.250.0.13 is the loopback of 'leaf-03'",
    ),
    "duplicate leaf ASN": Case(
        (on_leaf02("asn: 65111"),),
        DEV,
        "asn: 65111",
        "duplicate leaf ASN 65111: already used by 'leaf-01' (fabric/devices.yaml:{line:fabric/devices.yaml|id: 11})",
    ),
    "duplicate leaf ASN, derived one points at the id": Case(
        (Edit(DEV, "    id: 11\n", "    id: 11\n    asn: 65112\n"),),
        DEV,
        "id: 12",
        "duplicate leaf ASN 65112: already used by 'leaf-01' (fabric/devices.yaml:{line:fabric/devices.yaml|asn: 65112})",
    ),
    "leaf ASN is the spine ASN": Case(
        (on_leaf02("asn: 65000"),),
        DEV,
        "asn: 65000",
        "leaf ASN 65000 is the ASN of spine 'spine-01'",
    ),
    "duplicate management IP (host vs device)": Case(
        (
            Edit(HOSTS, "mgmt_ip: 10.255.0.101/24", "mgmt_ip: 10.255.0.11/24"),
            Edit(INV, "hostname: 10.255.0.101", "hostname: 10.255.0.11"),
        ),
        HOSTS,
        "mgmt_ip: 10.255.0.11/24",
        "duplicate management IP 10.255.0.11: already used by 'spine-01' "
        "(fabric/devices.yaml:{line:fabric/devices.yaml|10.255.0.11/24})",
    ),
    "management IP outside the management subnet": Case(
        (
            Edit(DEV, "mgmt_ip: 10.255.0.22/24", "mgmt_ip: 10.254.0.22/24"),
            Edit(INV, "hostname: 10.255.0.22", "hostname: 10.254.0.22"),
        ),
        DEV,
        "10.254.0.22/24",
        "management IP 10.254.0.22 is outside the management subnet 10.255.0.0/24",
    ),
    "pool exhausted: loopbacks": Case(
        (Edit(DEV, "id: 14", "id: 300"),),
        DEV,
        "id: 300",
        "pool exhausted: pools.loopbacks 10.250.0.0/24 has 254 usable addresses for ids 1-254; node id 300 is beyond it",
        only=False,
        extra=(
            "pool exhausted: pools.vteps 10.250.1.0/24 has 254 usable addresses for ids 1-254; node id 300 is beyond it",
            "pool exhausted: pools.leaf_asns 65100-65199 has 99 ASNs for ids 1-99; node id 300 needs ASN 65400",
            "pool exhausted: pools.p2p 10.250.16.0/22 has 512 /31 subnets; leaf 'leaf-04' (id 300) needs number 600",
        ),
    ),
    "pool exhausted: leaf ASNs": Case(
        (Edit(FAB, "leaf_asns: 65100-65199", "leaf_asns: 65100-65112"),),
        DEV,
        "id: 13",
        "pool exhausted: pools.leaf_asns 65100-65112 has 12 ASNs for ids 1-12; node id 13 needs ASN 65113",
        only=False,
    ),
    "pool exhausted: p2p": Case(
        (Edit(FAB, "p2p: 10.250.16.0/22", "p2p: 10.250.16.0/27"),),
        LNK,
        "device: spine-01, port: swp1",
        "pool exhausted: pools.p2p 10.250.16.0/27 has 16 /31 subnets; leaf 'leaf-01' (id 11) needs number 22",
        only=False,
    ),
    "more links than p2p_per_leaf": Case(
        (Edit(FAB, "p2p_per_leaf: 2", "p2p_per_leaf: 1"),),
        LNK,
        "device: spine-02, port: swp1",
        "leaf 'leaf-01' has more links than pools.p2p_per_leaf (1) allows; "
        "raise p2p_per_leaf or give this link an explicit subnet",
        only=False,
    ),
    "/31 ends in different subnets": Case(
        (
            Edit(LNK, "{device: spine-01, port: swp1}", "{device: spine-01, port: swp1, ip: 10.250.16.44/31}"),
            Edit(LNK, "{device: leaf-01, port: swp51}", "{device: leaf-01, port: swp51, ip: 10.250.16.47/31}"),
        ),
        LNK,
        "10.250.16.47/31",
        "link ends are not in the same /31: 10.250.16.44/31 and 10.250.16.47/31",
    ),
    "/31 ends with the same address": Case(
        (
            Edit(LNK, "{device: spine-01, port: swp1}", "{device: spine-01, port: swp1, ip: 10.250.16.44/31}"),
            Edit(LNK, "{device: leaf-01, port: swp51}", "{device: leaf-01, port: swp51, ip: 10.250.16.44/31}"),
        ),
        LNK,
        "device: leaf-01, port: swp51",
        "both link ends have the address 10.250.16.44",
    ),
    "link address that is not a /31": Case(
        (Edit(LNK, "{device: spine-01, port: swp1}", "{device: spine-01, port: swp1, ip: 10.250.16.44/30}"),),
        LNK,
        "10.250.16.44/30",
        "link address 10.250.16.44/30 must be a /31",
    ),
    "link address outside the link subnet": Case(
        (
            Edit(
                LNK,
                "  - a: {device: spine-01, port: swp1}",
                "  - subnet: 10.250.16.100/31\n    a: {device: spine-01, port: swp1, ip: 10.250.16.44/31}",
            ),
        ),
        LNK,
        "port: swp1, ip: 10.250.16.44/31",
        "link address 10.250.16.44/31 is outside the link subnet 10.250.16.100/31",
    ),
    "p2p subnet used twice": Case(
        (
            Edit(
                LNK,
                "  - a: {device: spine-02, port: swp1}",
                "  - subnet: 10.250.16.44/31\n    a: {device: spine-02, port: swp1}",
            ),
        ),
        LNK,
        "subnet: 10.250.16.44/31",
        "p2p subnet 10.250.16.44/31 is already used by link spine-01:swp1--leaf-01:swp51 "
        "(fabric/links.yaml:{line:fabric/links.yaml|device: spine-01, port: swp1})",
    ),
    "link to an unknown device": Case(
        (Edit(LNK, "{device: leaf-01, port: swp51}", "{device: leaf-09, port: swp51}"),),
        LNK,
        "leaf-09",
        "unknown device 'leaf-09'",
    ),
    "link to an unknown port": Case(
        (Edit(LNK, "{device: leaf-01, port: swp51}", "{device: leaf-01, port: swp99}"),),
        LNK,
        "swp99",
        "device 'leaf-01' has no port 'swp99'",
    ),
    "port used by two links": Case(
        (Edit(LNK, "{device: spine-01, port: swp2}", "{device: spine-01, port: swp1}"),),
        LNK,
        "device: spine-01, port: swp1",
        "port spine-01:swp1 is already used by link spine-01:swp1--leaf-01:swp51 "
        "(fabric/links.yaml:{line:fabric/links.yaml|device: spine-01, port: swp1})",
        nth=2,
    ),
    "link between two spines": Case(
        (Edit(LNK, "{device: leaf-01, port: swp51}", "{device: spine-02, port: swp9}"),),
        LNK,
        "spine-02, port: swp9",
        "a fabric link must connect a spine and a leaf, not spine 'spine-01' and spine 'spine-02'",
    ),
    "overlap: network subnet inside a pool": Case(
        (Edit(TEN, "gateway: 10.30.20.1/24", "gateway: 10.250.0.1/24"),),
        TEN,
        "gateway: 10.250.0.1/24",
        "10.250.0.0/24 (the subnet of network 'uat-app') overlaps 10.250.0.0/24 "
        "(pools.loopbacks, fabric/fabric.yaml:{line:fabric/fabric.yaml|loopbacks:})",
    ),
    "overlap: two network subnets": Case(
        (Edit(TEN, "gateway: 10.30.20.1/24", "gateway: 10.30.10.129/25"),),
        TEN,
        "gateway: 10.30.10.129/25",
        "10.30.10.128/25 (the subnet of network 'uat-app') overlaps 10.30.10.0/24 "
        "(the subnet of network 'uat-web', fabric/tenants.yaml:{line:fabric/tenants.yaml|gateway: 10.30.10.1/24})",
    ),
    "overlap: management subnet and a pool": Case(
        (Edit(FAB, "vteps: 10.250.1.0/24", "vteps: 10.255.0.0/25"),),
        FAB,
        "vteps: 10.255.0.0/25",
        "10.255.0.0/25 (pools.vteps) overlaps 10.255.0.0/24 "
        "(the management subnet, fabric/fabric.yaml:{line:fabric/fabric.yaml|subnet: 10.255.0.0/24})",
        only=False,
    ),
    "VLAN mapped to two VNIs": Case(
        (Edit(TEN, "vlan: 20\n", "vlan: 10\n"),),
        TEN,
        "vlan: 10",
        "VLAN 10 is already used by network 'uat-web' for VNI 10010 (fabric/tenants.yaml:{line:fabric/tenants.yaml|vlan: 10})",
        nth=2,
    ),
    "VLAN of a network is a VRF's L3 VLAN": Case(
        (Edit(TEN, "vlan: 20\n", "vlan: 3901\n"),),
        TEN,
        "    vlan: 3901",
        "VLAN 3901 is already used by VRF 'UAT' as its L3 VLAN (fabric/tenants.yaml:{line:fabric/tenants.yaml|l3_vlan: 3901})",
    ),
    "VNI mapped to two VLANs": Case(
        (Edit(TEN, "vni: 10020", "vni: 10010"),),
        TEN,
        "vni: 10010",
        "VNI 10010 is already used by network 'uat-web' for VLAN 10 (fabric/tenants.yaml:{line:fabric/tenants.yaml|vni: 10010})",
        nth=2,
    ),
    "VNI used as L2 and L3": Case(
        (Edit(TEN, "vni: 10020", "vni: 50001"),),
        TEN,
        "    vni: 50001",
        "VNI 50001 is already used by VRF 'UAT' as its L3 VNI (fabric/tenants.yaml:{line:fabric/tenants.yaml|l3_vni: 50001})",
    ),
    "L3 VNI used by two VRFs": Case(
        (Edit(TEN, "l3_vni: 50001", "l3_vni: 50000"),),
        TEN,
        "l3_vni: 50000",
        "L3 VNI 50000 is already used by VRF 'INFRA' as its L3 VNI (fabric/tenants.yaml:{line:fabric/tenants.yaml|l3_vni: 50000})",
        nth=2,
    ),
    "network in an unknown VRF": Case(
        (Edit(TEN, "vrf: UAT\n    vlan: 20", "vrf: PROD\n    vlan: 20"),),
        TEN,
        "vrf: PROD",
        "unknown VRF 'PROD'",
    ),
    "network on an unknown leaf": Case(
        (Edit(TEN, "leaves: [leaf-01, leaf-02]", "leaves: [leaf-01, leaf-09]"),),
        TEN,
        "leaf-09",
        "unknown leaf 'leaf-09'",
    ),
    "leaf listed twice on a network": Case(
        (Edit(TEN, "leaves: [leaf-01, leaf-02]", "leaves: [leaf-01, leaf-02, leaf-01]"),),
        TEN,
        "leaves: [leaf-01, leaf-02, leaf-01]",
        "leaf 'leaf-01' is listed twice",
    ),
    "network on a spine": Case(
        (Edit(TEN, "leaves: [leaf-01, leaf-02]", "leaves: [leaf-01, spine-01]"),),
        TEN,
        "spine-01",
        "'spine-01' is a spine; networks are carried by leaves",
    ),
    "MTU budget: VXLAN over IPv4": Case(
        (Edit(TEN, "mtu: 9000\n    leaves: [leaf-01, leaf-02]", "mtu: 9200\n    leaves: [leaf-01, leaf-02]"),),
        TEN,
        "mtu: 9200",
        "MTU budget: network MTU 9200 + 50 bytes of VXLAN over IPv4 = 9250 exceeds the fabric MTU 9216",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_fabric_check(repo: Repo, case: Case) -> None:
    case.run(repo)


def test_mtu_budget_vxlan_over_ipv6(repo: Repo) -> None:
    repo.edit(FAB, "loopbacks: 10.250.0.0/24", "loopbacks: fd00:250::/64")
    repo.edit(FAB, "vteps: 10.250.1.0/24", "vteps: fd00:251::/64")
    repo.edit(FAB, "p2p: 10.250.16.0/22", "p2p: fd00:252::/64")
    repo.edit(FAB, "address_family: ipv4", "address_family: ipv6")
    for node_id in (1, 2, 11, 12, 13, 14):
        repo.edit(DEV, f"    id: {node_id}\n", f"    id: {node_id}\n    router_id: 10.250.0.{node_id}\n")
    model = repo.load()  # an IPv6 underlay validates: /127 links, IPv6 loopbacks and VTEPs
    assert str(model.links_by_device["leaf-01"][0].subnet) == "fd00:252::2c/127"
    assert str(model.devices["leaf-01"].vtep) == "fd00:251::b"
    repo.edit(TEN, "mtu: 9000\n    leaves: [leaf-01, leaf-02]", "mtu: 9150\n    leaves: [leaf-01, leaf-02]")
    [diag] = repo.errors()
    assert (diag.file, diag.line, diag.message) == (
        TEN,
        repo.line(TEN, "mtu: 9150"),
        "MTU budget: network MTU 9150 + 70 bytes of VXLAN over IPv6 = 9220 exceeds the fabric MTU 9216",
    )


def test_ipv6_underlay_needs_explicit_router_ids(repo: Repo) -> None:
    repo.edit(FAB, "loopbacks: 10.250.0.0/24", "loopbacks: fd00:250::/64")
    repo.edit(FAB, "vteps: 10.250.1.0/24", "vteps: fd00:251::/64")
    repo.edit(FAB, "p2p: 10.250.16.0/22", "p2p: fd00:252::/64")
    repo.edit(FAB, "address_family: ipv4", "address_family: ipv6")
    errors = repo.errors()
    assert len(errors) == 6
    assert errors[0].message == "router_id is required when the loopback is IPv6"


def test_pool_family_must_match_the_underlay(repo: Repo) -> None:
    repo.edit(FAB, "p2p: 10.250.16.0/22", "p2p: fd00:252::/64")
    assert [(d.file, d.message) for d in repo.errors()] == [
        (FAB, "pools.p2p fd00:252::/64 is IPv6 but underlay.address_family is ipv4")
    ]


def test_explicit_values_override_derived_ones(repo: Repo) -> None:
    repo.edit(
        DEV, "    id: 12\n", "    id: 12\n    asn: 64999\n    loopback: 10.250.0.200\n    vtep_ip: 10.250.1.200\n"
    )
    repo.edit(LNK, "{device: leaf-02, port: swp51}", "{device: leaf-02, port: swp51, ip: 10.250.20.1/31}")
    model = repo.load()
    leaf = model.devices["leaf-02"]
    assert (leaf.asn, str(leaf.loopback), str(leaf.router_id), str(leaf.vtep)) == (
        64999,
        "10.250.0.200",
        "10.250.0.200",
        "10.250.1.200",
    )
    link = model.links_by_device["leaf-02"][0]
    assert (str(link.subnet), str(link.spine.ip), str(link.leaf.ip)) == (
        "10.250.20.0/31",
        "10.250.20.0/31",
        "10.250.20.1/31",
    )
    # the second uplink of leaf-02 keeps its derived /31: explicit values do not shift others
    assert str(model.links_by_device["leaf-02"][1].subnet) == "10.250.16.50/31"


def test_link_ends_may_be_written_leaf_first(repo: Repo) -> None:
    repo.edit(
        LNK,
        "  - a: {device: spine-01, port: swp1}\n    b: {device: leaf-01, port: swp51}",
        "  - a: {device: leaf-01, port: swp51}\n    b: {device: spine-01, port: swp1}",
    )
    link = repo.load().links_by_device["leaf-01"][0]
    assert (link.spine.device, str(link.spine.ip), str(link.leaf.ip)) == (
        "spine-01",
        "10.250.16.45/31",
        "10.250.16.44/31",
    )
