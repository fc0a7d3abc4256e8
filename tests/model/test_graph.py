"""Incremental rendering: which targets a model change affects."""

from __future__ import annotations

from lintas.workers.model import InfraModel, affected_by, affected_targets, changed_objects

from .conftest import Repo

DEV, TEN, FAB, LNK = "fabric/devices.yaml", "fabric/tenants.yaml", "fabric/fabric.yaml", "fabric/links.yaml"
HOSTS, INST, FLAV = "hosts/hosts.yaml", "hosts/instances.yaml", "hosts/flavors.yaml"
LEAVES = {"leaf-01", "leaf-02", "leaf-03", "leaf-04"}
SPINES = {"spine-01", "spine-02"}
HOST_NAMES = {"kvm-uat-01", "osc-01"}

VNI_10030 = """
  - name: uat-batch
    vrf: UAT
    vlan: 30
    vni: 10030
    gateway: 10.30.30.1/24
    leaves: [leaf-02]
"""


def change(repo: Repo, *edits: tuple[str, str, str]) -> tuple[InfraModel, InfraModel]:
    old = repo.load()
    for file, before, after in edits:
        repo.edit(file, before, after)
    return old, repo.load()


def test_no_change_affects_nothing(repo: Repo) -> None:
    assert affected_targets(repo.load(), repo.load()) == set()


def test_first_deploy_affects_everything(repo: Repo) -> None:
    assert affected_targets(None, repo.load()) == LEAVES | SPINES | HOST_NAMES


def test_new_vni_on_one_leaf_affects_that_leaf(repo: Repo) -> None:
    old = repo.load()
    repo.append(TEN, VNI_10030)
    assert affected_targets(old, repo.load()) == {"leaf-02"}


def test_existing_network_extended_to_one_leaf_affects_only_that_leaf(repo: Repo) -> None:
    old, new = change(repo, (TEN, "leaves: [leaf-01, leaf-02]", "leaves: [leaf-01, leaf-02, leaf-04]"))
    assert affected_targets(old, new) == {"leaf-04"}
    assert affected_by(old, new) == {"leaf-04": {("carries", "leaf-04", "uat-app")}}


def test_network_change_affects_its_leaves_and_the_hosts_using_it(repo: Repo) -> None:
    old, new = change(repo, (TEN, "gateway: 10.30.20.1/24", "gateway: 10.30.21.1/24"))
    assert affected_targets(old, new) == {"leaf-01", "leaf-02", "kvm-uat-01"}


def test_spine_asn_change_affects_spines_and_all_leaves(repo: Repo) -> None:
    old, new = change(repo, (FAB, "spine_asn: 65000", "spine_asn: 65001"))
    assert affected_targets(old, new) == SPINES | LEAVES


def test_one_spine_asn_override_affects_that_spine_and_its_leaves(repo: Repo) -> None:
    old, new = change(repo, (DEV, "    id: 2\n", "    id: 2\n    asn: 65002\n"))
    assert affected_targets(old, new) == {"spine-02"} | LEAVES


def test_fabric_wide_setting_affects_everything(repo: Repo) -> None:
    old, new = change(repo, (FAB, "mtu: 9216", "mtu: 9214"))
    assert affected_targets(old, new) == SPINES | LEAVES | HOST_NAMES


def test_overlay_setting_affects_every_switch(repo: Repo) -> None:
    old, new = change(repo, (FAB, '"00:1c:73:00:00:99"', '"00:1c:73:00:00:98"'))
    assert affected_targets(old, new) == SPINES | LEAVES


def test_leaf_id_change_moves_its_addresses_and_links(repo: Repo) -> None:
    old, new = change(repo, (DEV, "    id: 14\n", "    id: 15\n"))
    assert affected_targets(old, new) == {"leaf-04"} | SPINES
    assert ("device", "leaf-04") in changed_objects(old, new)


def test_management_ip_change_affects_only_that_device(repo: Repo) -> None:
    old, new = change(
        repo, (DEV, "10.255.0.23/24", "10.255.0.33/24"), ("inventory/hosts.yaml", "10.255.0.23", "10.255.0.33")
    )
    assert affected_targets(old, new) == {"leaf-03"}


def test_instance_change_affects_its_host(repo: Repo) -> None:
    old, new = change(repo, (INST, "state: stopped", "state: running"))
    assert affected_targets(old, new) == {"kvm-uat-01"}


def test_moved_instance_affects_old_and_new_host(repo: Repo) -> None:
    old, new = change(repo, (INST, "host: osc-01", "host: kvm-uat-01"))
    assert affected_targets(old, new) == {"osc-01", "kvm-uat-01"}


def test_flavor_change_affects_hosts_running_it(repo: Repo) -> None:
    old, new = change(repo, (FLAV, "ram_mib: 64", "ram_mib: 128"))
    assert affected_targets(old, new) == {"kvm-uat-01"}
    old, new = change(repo, (FLAV, "ram_mib: 8192", "ram_mib: 4096"))
    assert affected_targets(old, new) == {"kvm-uat-01", "osc-01"}


def test_unused_flavor_affects_nothing(repo: Repo) -> None:
    old, new = change(repo, (FLAV, "ram_mib: 16384", "ram_mib: 32768"))
    assert affected_targets(old, new) == set()


def test_host_recabled_affects_host_and_both_leaves(repo: Repo) -> None:
    old, new = change(repo, (HOSTS, "      leaf: leaf-03\n", "      leaf: leaf-04\n"))
    assert affected_targets(old, new) == {"osc-01", "leaf-03", "leaf-04"}


def test_host_capacity_change_does_not_touch_its_leaf(repo: Repo) -> None:
    old, new = change(repo, (HOSTS, "vcpus: 96", "vcpus: 128"))
    assert affected_targets(old, new) == {"osc-01"}


def test_tunnel_endpoint_change_reaches_geneve_peers(repo: Repo) -> None:
    repo.append(
        HOSTS,
        "\n  - name: kvm-dev-01\n    kind: kvm\n    mgmt_ip: 10.255.0.102/24\n    libvirt_uri: qemu:///system\n"
        "    uplink: {leaf: leaf-02, port: swp1, nic: eno1, tunnel_network: infra-tunnel, tunnel_ip: 10.20.0.12/24}\n"
        "    tunnels: {}\n    capacity: {vcpus: 8, memory_mib: 16384}\n",
    )
    old, new = change(repo, (HOSTS, "tunnel_ip: 10.20.0.12/24", "tunnel_ip: 10.20.0.13/24"))
    assert affected_targets(old, new) == {"kvm-dev-01", "kvm-uat-01"}


def test_removed_device_is_reported(repo: Repo) -> None:
    old = repo.load()
    repo.edit(TEN, "leaves: [leaf-01, leaf-02, leaf-03, leaf-04]", "leaves: [leaf-01, leaf-02, leaf-03]")
    repo.edit(LNK, "  - a: {device: spine-01, port: swp4}\n    b: {device: leaf-04, port: swp51}\n", "")
    repo.edit(LNK, "  - a: {device: spine-02, port: swp4}\n    b: {device: leaf-04, port: swp52}\n", "")
    text = repo.read(DEV)
    repo.write(DEV, text[: text.index("  - name: leaf-04")])
    repo.edit("inventory/hosts.yaml", "leaf-04:\n  hostname: 10.255.0.24\n  groups: [leaf, frr]\n", "")
    assert affected_targets(old, repo.load()) == {"leaf-04"} | SPINES
