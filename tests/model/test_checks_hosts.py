"""Each semantic check of hypervisors has a failing fixture: message and location."""

from __future__ import annotations

import pytest

from .cases import Case, Edit, append
from .conftest import Repo

HOSTS, TEN = "hosts/hosts.yaml", "fabric/tenants.yaml"
KVM_UPLINK = "      leaf: leaf-01\n      port: swp1\n"
OSC_UPLINK = "      leaf: leaf-03\n      port: swp1\n"


def host(name: str, mgmt: str, tunnel_ip: str) -> str:
    return (
        f"\n  - name: {name}\n    kind: kvm\n    mgmt_ip: {mgmt}\n    libvirt_uri: qemu:///system\n"
        "    uplink:\n      leaf: leaf-02\n      port: swp1\n      nic: eno1\n"
        f"      tunnel_network: infra-tunnel\n      tunnel_ip: {tunnel_ip}\n"
        "    tunnels: {}\n    capacity: {vcpus: 8, memory_mib: 16384}\n"
    )


CASES = {
    "duplicate hostname (host named like a switch)": Case(
        (append(HOSTS, host("leaf-04", "10.255.0.104/24", "10.20.0.14/24")),),
        HOSTS,
        "name: leaf-04",
        "duplicate hostname 'leaf-04' (first defined at fabric/devices.yaml:{line:fabric/devices.yaml|name: leaf-04})",
    ),
    "uplink to an unknown leaf": Case(
        (Edit(HOSTS, "leaf: leaf-01", "leaf: leaf-09"),),
        HOSTS,
        "leaf: leaf-09",
        "unknown leaf 'leaf-09'",
    ),
    "uplink to a spine": Case(
        (Edit(HOSTS, KVM_UPLINK, "      leaf: spine-01\n      port: swp20\n"),),
        HOSTS,
        "leaf: spine-01",
        "'spine-01' is a spine; hosts are cabled to leaves",
    ),
    "uplink to an unknown port": Case(
        (Edit(HOSTS, KVM_UPLINK, "      leaf: leaf-01\n      port: swp99\n"),),
        HOSTS,
        "port: swp99",
        "device 'leaf-01' has no port 'swp99'",
    ),
    "uplink on a port used by a fabric link": Case(
        (Edit(HOSTS, KVM_UPLINK, "      leaf: leaf-01\n      port: swp51\n"),),
        HOSTS,
        "port: swp51",
        "port leaf-01:swp51 is already used by link spine-01:swp1--leaf-01:swp51 "
        "(fabric/links.yaml:{line:fabric/links.yaml|leaf-01, port: swp51})",
    ),
    "two hosts on one port": Case(
        (Edit(HOSTS, OSC_UPLINK, KVM_UPLINK),),
        HOSTS,
        "port: swp1",
        "port leaf-01:swp1 is already used by host 'kvm-uat-01' (hosts/hosts.yaml:{line:hosts/hosts.yaml|port: swp1})",
        nth=2,
    ),
    "unknown tunnel network": Case(
        (Edit(HOSTS, "tunnel_network: infra-tunnel", "tunnel_network: infra"),),
        HOSTS,
        "tunnel_network: infra",
        "unknown network 'infra'",
    ),
    "unknown trunked network": Case(
        (Edit(HOSTS, "networks: [uat-web]", "networks: [uat-web, uat-db]"),),
        HOSTS,
        "uat-db",
        "unknown network 'uat-db'",
    ),
    "trunked network not carried on the host's leaf": Case(
        (Edit(HOSTS, "networks: [uat-web]", "networks: [uat-web, uat-app]"),),
        HOSTS,
        "networks: [uat-web, uat-app]",
        "network 'uat-app' is not carried on leaf 'leaf-03' (add the leaf to the network's leaves)",
        nth=2,
    ),
    "tunnel network not carried on the host's leaf": Case(
        (Edit(TEN, "    leaves: all\n", "    leaves: [leaf-01, leaf-02]\n"),),
        HOSTS,
        "tunnel_network: infra-tunnel",
        "network 'infra-tunnel' is not carried on leaf 'leaf-03' (add the leaf to the network's leaves)",
        nth=2,
    ),
    "tunnel IP outside the tunnel network": Case(
        (Edit(HOSTS, "tunnel_ip: 10.20.0.11/24", "tunnel_ip: 10.21.0.11/24"),),
        HOSTS,
        "10.21.0.11/24",
        "tunnel IP 10.21.0.11/24 is outside the subnet 10.20.0.0/24 of network 'infra-tunnel'",
    ),
    "tunnel IP is the anycast gateway": Case(
        (Edit(HOSTS, "tunnel_ip: 10.20.0.11/24", "tunnel_ip: 10.20.0.1/24"),),
        HOSTS,
        "10.20.0.1/24",
        "tunnel IP 10.20.0.1 is the anycast gateway of network 'infra-tunnel'",
    ),
    "duplicate tunnel IP": Case(
        (
            Edit(HOSTS, "tunnel_ip: 10.20.0.21/24", "tunnel_ip: 10.20.0.11/24"),
            Edit(HOSTS, "encap_ip: 10.20.0.21", "encap_ip: 10.20.0.11"),
        ),
        HOSTS,
        "tunnel_ip: 10.20.0.11/24",
        "duplicate tunnel IP 10.20.0.11: already used by 'kvm-uat-01' (hosts/hosts.yaml:{line:hosts/hosts.yaml|tunnel_ip:})",
        nth=2,
    ),
    "OVN encap IP differs from the tunnel IP": Case(
        (Edit(HOSTS, "encap_ip: 10.20.0.21", "encap_ip: 10.20.0.99"),),
        HOSTS,
        "encap_ip: 10.20.0.99",
        "ovn.encap_ip 10.20.0.99 differs from the tunnel IP 10.20.0.21 of the uplink",
    ),
    "OVN bridge mapping to a missing bridge": Case(
        (Edit(HOSTS, "physnet1: br-provider", "physnet1: br-ex"),),
        HOSTS,
        "physnet1: br-ex",
        "bridge mapping 'physnet1' names bridge 'br-ex', which is not in ovs.bridges",
    ),
    "unknown tunnel peer": Case(
        (Edit(HOSTS, "peers: all", "peers: [kvm-dev-01]"),),
        HOSTS,
        "kvm-dev-01",
        "unknown host 'kvm-dev-01'",
    ),
    "tunnel peer using OVN": Case(
        (Edit(HOSTS, "peers: all", "peers: [osc-01]"),),
        HOSTS,
        "peers: [osc-01]",
        "peer 'osc-01' uses OVN chassis settings, not plain geneve tunnels",
    ),
    "host is its own tunnel peer": Case(
        (Edit(HOSTS, "peers: all", "peers: [kvm-uat-01]"),),
        HOSTS,
        "peers: [kvm-uat-01]",
        "a host cannot be its own tunnel peer",
    ),
    "MTU budget: uplink above the fabric MTU": Case(
        (Edit(HOSTS, "      mtu: 9000\n", "      mtu: 9300\n"),),
        HOSTS,
        "mtu: 9300",
        "MTU budget: uplink MTU 9300 exceeds the fabric MTU 9216",
        only=False,
        extra=("MTU budget: uplink MTU 9300 exceeds the MTU 9000 of tunnel network 'infra-tunnel'",),
    ),
    "MTU budget: uplink above its tunnel network MTU": Case(
        (Edit(TEN, "mtu: 9000\n    leaves: all", "mtu: 8000\n    leaves: all"),),
        HOSTS,
        "mtu: 9000",
        "MTU budget: uplink MTU 9000 exceeds the MTU 8000 of tunnel network 'infra-tunnel'",
        only=False,
    ),
    "MTU budget: overlay + geneve over IPv4 above the uplink": Case(
        (Edit(HOSTS, "overlay_mtu: 8942", "overlay_mtu: 8960"),),
        HOSTS,
        "overlay_mtu: 8960",
        "MTU budget: overlay MTU 8960 + 58 bytes of Geneve over IPv4 = 9018 exceeds the uplink MTU 9000",
    ),
    "MTU budget: OVN vxlan encapsulation": Case(
        (
            Edit(HOSTS, "encap_type: geneve", "encap_type: vxlan"),
            Edit(HOSTS, "    capacity:\n      vcpus: 96", "    overlay_mtu: 8960\n    capacity:\n      vcpus: 96"),
        ),
        HOSTS,
        "overlay_mtu: 8960",
        "MTU budget: overlay MTU 8960 + 50 bytes of VXLAN over IPv4 = 9010 exceeds the uplink MTU 9000",
    ),
    "MTU budget: uplink too small for any overlay": Case(
        (
            Edit(
                HOSTS,
                OSC_UPLINK + "      nic: ens1f0\n      mtu: 9000",
                OSC_UPLINK + "      nic: ens1f0\n      mtu: 1300",
            ),
        ),
        HOSTS,
        "mtu: 1300",
        "MTU budget: uplink MTU 1300 leaves 1242 bytes for the overlay after 58 bytes of Geneve over IPv4 "
        "(at least 1280 needed)",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_host_check(repo: Repo, case: Case) -> None:
    case.run(repo)


def test_mtu_budget_geneve_over_ipv6(repo: Repo) -> None:
    repo.edit(TEN, "gateway: 10.20.0.1/24", "gateway: fd00:20::1/64")
    repo.edit(HOSTS, "tunnel_ip: 10.20.0.11/24", "tunnel_ip: fd00:20::11/64")
    repo.edit(HOSTS, "tunnel_ip: 10.20.0.21/24", "tunnel_ip: fd00:20::21/64")
    repo.edit(HOSTS, "encap_ip: 10.20.0.21", "encap_ip: fd00:20::21")
    [diag] = repo.errors()
    assert (diag.file, diag.line, diag.message) == (
        HOSTS,
        repo.line(HOSTS, "overlay_mtu: 8942"),
        "MTU budget: overlay MTU 8942 + 78 bytes of Geneve over IPv6 = 9020 exceeds the uplink MTU 9000",
    )
    repo.edit(HOSTS, "overlay_mtu: 8942", "overlay_mtu: 8922")
    model = repo.load()
    assert (model.hosts["kvm-uat-01"].overlay_mtu, model.hosts["osc-01"].overlay_mtu) == (8922, 8922)


def test_geneve_mesh_peers(repo: Repo) -> None:
    repo.append(HOSTS, host("kvm-dev-01", "10.255.0.102/24", "10.20.0.12/24"))
    model = repo.load()
    assert model.hosts["kvm-uat-01"].peers == ("kvm-dev-01",)
    assert model.hosts["kvm-dev-01"].peers == ("kvm-uat-01",)
    assert model.hosts["osc-01"].peers == ()
    # defaults of the new host come from the file's `defaults`
    assert model.hosts["kvm-dev-01"].cpu_allocation_ratio == 4.0
    assert model.hosts["kvm-dev-01"].overlay_mtu == 8942
