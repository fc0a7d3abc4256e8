from __future__ import annotations

import ipaddress
from pathlib import Path

from lintas.workers.model import InfraModel, load_model
from lintas.workers.model.loader import MODEL_FILES

from .conftest import TEMPLATE


def test_template_validates_without_errors() -> None:
    model = load_model(TEMPLATE)
    assert sorted(model.devices) == ["leaf-01", "leaf-02", "leaf-03", "leaf-04", "spine-01", "spine-02"]
    assert sorted(model.hosts) == ["kvm-uat-01", "osc-01"]
    assert len(model.links) == 8


def test_template_has_every_model_file_and_readmes() -> None:
    for rel in MODEL_FILES:
        assert (TEMPLATE / rel).is_file(), rel
    for rel in ("README.md", "templates/README.md", "policies/README.md"):
        assert (TEMPLATE / rel).is_file(), rel


def test_derived_values_follow_pool_start_plus_id(template_model: InfraModel) -> None:
    leaf = template_model.devices["leaf-01"]
    assert (leaf.id, leaf.asn) == (11, 65111)
    assert leaf.loopback == ipaddress.ip_address("10.250.0.11")
    assert leaf.router_id == ipaddress.ip_address("10.250.0.11")
    assert leaf.vtep == ipaddress.ip_address("10.250.1.11")
    spine = template_model.devices["spine-02"]
    assert (spine.asn, spine.vtep, str(spine.loopback)) == (65000, None, "10.250.0.2")


def test_links_get_31s_from_leaf_id_and_uplink_number(template_model: InfraModel) -> None:
    links = template_model.links_by_device["leaf-01"]
    assert [str(lk.subnet) for lk in links] == ["10.250.16.44/31", "10.250.16.46/31"]
    first = links[0]
    assert (first.spine.device, str(first.spine.ip), first.leaf.port, str(first.leaf.ip)) == (
        "spine-01",
        "10.250.16.44/31",
        "swp51",
        "10.250.16.45/31",
    )
    assert first.mtu == 9216
    assert first.remote("leaf-01") == first.spine


def test_indexes_for_rendering(template_model: InfraModel) -> None:
    m = template_model
    assert m.networks_by_leaf["leaf-01"] == ("infra-tunnel", "uat-web", "uat-app")
    assert m.networks_by_leaf["leaf-04"] == ("infra-tunnel", "uat-web")
    assert m.networks["infra-tunnel"].leaves == ("leaf-01", "leaf-02", "leaf-03", "leaf-04")
    assert m.vrfs_of_leaf("leaf-03") == ["INFRA", "UAT"]
    assert m.hosts_by_leaf == {"leaf-01": ("kvm-uat-01",), "leaf-03": ("osc-01",)}
    assert m.instances_by_host["kvm-uat-01"] == ("uat-web-01", "uat-app-01", "uat-batch-01")


def test_hosts_resolved(template_model: InfraModel) -> None:
    kvm, osc = template_model.hosts["kvm-uat-01"], template_model.hosts["osc-01"]
    assert kvm.owns_domains and not osc.owns_domains
    assert (kvm.overlay_mtu, kvm.encap_overhead, osc.overlay_mtu) == (8942, 58, 8942)
    assert (kvm.cpu_allocation_ratio, osc.cpu_allocation_ratio, osc.ram_allocation_ratio) == (2.0, 4.0, 1.0)
    assert kvm.tunnels is not None and (kvm.tunnels.key, kvm.tunnels.csum) == ("flow", True)
    assert osc.ovn is not None and osc.ovn.bridge_mappings == {"physnet1": "br-provider"}
    assert template_model.flavors["m1.tiny3.migrate"].model_dump(
        include={"vcpus", "ram_mib", "disk_gb", "swap_mib"}
    ) == {
        "vcpus": 2,
        "ram_mib": 8192,
        "disk_gb": 80,
        "swap_mib": 0,
    }


def test_instances_carry_openstack_style_macs(template_model: InfraModel) -> None:
    for inst in template_model.instances.values():
        for nic in inst.nics:
            assert nic.mac.startswith("fa:16:3e:") and nic.bridge == "br-int" and nic.model == "virtio"


def test_template_has_no_inline_secrets(template_model: InfraModel) -> None:
    assert template_model.fabric.underlay.password == "env:FABRIC_BGP_PASSWORD"
    assert template_model.inventory.defaults.password == "env:LINTAS_SSH_PASSWORD"
    assert set(template_model.inventory.hosts) == template_model.targets


def test_origins_point_back_at_the_yaml(template_model: InfraModel) -> None:
    origin = template_model.origin("device", "leaf-01")
    assert origin is not None
    lines = (TEMPLATE / "fabric/devices.yaml").read_text().splitlines()
    line = int(origin.where().split(":")[1])
    assert lines[line - 1].strip() == "- name: leaf-01"


def test_loads_the_same_from_texts() -> None:
    from lintas.workers.model import load_model_texts

    texts = {rel: (TEMPLATE / rel).read_text() for rel in MODEL_FILES}
    assert load_model_texts(texts) == load_model(Path(TEMPLATE))
