"""The lab plan is pure: names, addresses and MTUs straight from the model (no root needed)."""

from __future__ import annotations

import pytest

from lintas.workers.lab.cmd import LabError
from lintas.workers.lab.topology import (
    IFNAMSIZ,
    MGMT_BRIDGE,
    is_lab_namespace,
    is_lab_root_link,
    mgmt_veth_name,
    namespace_name,
    plan_lab,
)
from lintas.workers.model.generate import generate_fabric
from tests.render import as_eos, model_of, template_texts

from .conftest import TEMPLATE


def test_template_plan() -> None:
    from lintas.workers.model import load_model

    plan = plan_lab(load_model(TEMPLATE))
    assert [s.name for s in plan.switches] == ["leaf-01", "leaf-02", "leaf-03", "leaf-04", "spine-01", "spine-02"]
    assert plan.mgmt_gateway == "10.255.0.1/24" and plan.bridge == MGMT_BRIDGE
    leaf1 = plan.switch("leaf-01")
    assert (leaf1.namespace, leaf1.mgmt_ip, leaf1.mgmt_veth) == ("lx-leaf-01", "10.255.0.21/24", "lxm-leaf-01")
    fabric = [p for p in plan.links if p.kind == "fabric"]
    assert len(fabric) == 8 and all(p.a.mtu == p.b.mtu == 9216 for p in fabric)
    first = next(p for p in fabric if p.b.namespace == "lx-leaf-01" and p.b.ifname == "swp51")
    assert (first.a.namespace, first.a.ifname, first.a.address, first.b.address) == (
        "lx-spine-01",
        "swp1",
        "10.250.16.44/31",
        "10.250.16.45/31",
    )
    # hosts: a namespace with the uplink NIC, cabled to the modelled leaf port
    assert [(h.name, h.namespace, h.nic, h.leaf, h.leaf_port) for h in plan.hosts] == [
        ("kvm-uat-01", "lx-kvm-uat-01", "ens1f0", "leaf-01", "swp1"),
        ("osc-01", "lx-osc-01", "ens1f0", "leaf-03", "swp1"),
    ]
    # and management like a switch: eth0 on the bridge, the root end named by the same scheme
    assert [(h.kind, h.mgmt_ip, h.mgmt_veth, h.mgmt_address) for h in plan.hosts] == [
        ("kvm", "10.255.0.101/24", "lxm-kvm-uat-01", "10.255.0.101"),
        ("openstack", "10.255.0.111/24", "lxm-osc-01", "10.255.0.111"),
    ]
    assert [n.name for n in plan.nodes][-2:] == ["kvm-uat-01", "osc-01"]
    host_link = next(p for p in plan.links if p.kind == "host" and p.b.namespace == "lx-osc-01")
    assert (host_link.a.ifname, host_link.a.mtu, host_link.b.mtu, host_link.a.address) == ("swp1", 9216, 9000, None)
    assert set(plan.namespaces) == {
        f"lx-{n}" for n in ("leaf-01", "leaf-02", "leaf-03", "leaf-04", "spine-01", "spine-02", "kvm-uat-01", "osc-01")
    }


def test_names_fit_the_kernel() -> None:
    assert mgmt_veth_name("leaf-01") == "lxm-leaf-01"
    long = mgmt_veth_name("border-leaf-0001")
    assert len(long) <= IFNAMSIZ and long.startswith("lxm") and long == mgmt_veth_name("border-leaf-0001")
    assert mgmt_veth_name("border-leaf-0001") != mgmt_veth_name("border-leaf-0002")
    assert namespace_name("leaf-01") == "lx-leaf-01" and is_lab_namespace("lx-leaf-01")
    assert is_lab_root_link("lxmgmt0") and is_lab_root_link(long) and not is_lab_root_link("eth0")
    with pytest.raises(LabError):
        namespace_name("../etc")


def test_generated_fabric_plan() -> None:
    plan = plan_lab(model_of(generate_fabric(32, vnis_per_leaf=2)))
    assert len(plan.switches) == 34
    assert len([p for p in plan.links if p.kind == "fabric"]) == 64
    assert all(len(s.mgmt_veth) <= IFNAMSIZ for s in plan.switches)
    assert len({s.mgmt_ip for s in plan.switches} | {plan.mgmt_gateway}) == 35


def test_eos_switches_are_left_out() -> None:
    plan = plan_lab(model_of(as_eos(template_texts(), {"leaf-01"})))
    assert "leaf-01" not in {s.name for s in plan.switches}
    assert ("leaf-01", "platform eos cannot run in the lab (FRR switches only)") in plan.skipped
    assert not any("lx-leaf-01" in (p.a.namespace, p.b.namespace) for p in plan.links)
    assert ("kvm-uat-01", "its leaf leaf-01 is not in the lab") in plan.skipped


def test_host_management_is_fingerprinted() -> None:
    texts = template_texts()
    before = plan_lab(model_of(texts))
    moved = dict(texts)
    moved["hosts/hosts.yaml"] = texts["hosts/hosts.yaml"].replace(
        "mgmt_ip: 10.255.0.111/24", "mgmt_ip: 10.255.0.112/24"
    )
    moved["inventory/hosts.yaml"] = texts["inventory/hosts.yaml"].replace("10.255.0.111", "10.255.0.112")
    after = plan_lab(model_of(moved))
    assert after.host("osc-01").mgmt_ip == "10.255.0.112/24"
    assert after.fingerprint("lx-osc-01") != before.fingerprint("lx-osc-01")
    assert after.fingerprint("lx-kvm-uat-01") == before.fingerprint("lx-kvm-uat-01")
