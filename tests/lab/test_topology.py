"""The lab plan is pure: names, addresses and MTUs straight from the model (no root needed)."""

from __future__ import annotations

import pytest

from lintas.workers.lab.cmd import LabError
from lintas.workers.lab.paths import LabPaths, twin_paths
from lintas.workers.lab.topology import (
    IFNAMSIZ,
    MGMT_BRIDGE,
    PRODUCTION,
    is_lab_namespace,
    is_lab_root_link,
    mgmt_veth_name,
    namespace_name,
    plan_lab,
    twin_instance,
    twin_of_namespace,
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


# -- twins (issue 18): a second instance of the same topology, isolated by its names -------------


def test_a_twin_plan_keeps_the_modelled_addresses_under_its_own_names() -> None:
    from lintas.workers.model import load_model

    model = load_model(TEMPLATE)
    prod, twin = plan_lab(model), plan_lab(model, twin_instance("3f2a"), hosts=False)
    assert twin.mgmt_namespace == "lt3f2a-mgmt" and prod.mgmt_namespace is None
    assert twin.bridge == "lt3f2amgmt0" and twin.mgmt_gateway == prod.mgmt_gateway == "10.255.0.1/24"
    assert [(s.name, s.mgmt_ip) for s in twin.switches] == [(s.name, s.mgmt_ip) for s in prod.switches]
    leaf1 = twin.switch("leaf-01")
    assert (leaf1.namespace, leaf1.mgmt_veth) == ("lt3f2a-leaf-01", "lt3f2am-leaf-01")
    # the same ports and addresses, in the twin's namespaces
    assert [(p.a.ifname, p.a.address, p.b.ifname, p.b.address) for p in twin.links if p.kind == "fabric"] == [
        (p.a.ifname, p.a.address, p.b.ifname, p.b.address) for p in prod.links if p.kind == "fabric"
    ]
    assert all(e.namespace.startswith("lt3f2a-") for p in twin.links for e in (p.a, p.b))
    assert twin.hosts == () and ("osc-01", "hosts are left out (its uplink NIC is kept)") in twin.skipped
    # a left-out host's leaf port still exists (the deploy configures it), cabled to the host's NIC alone
    stubs = [(p.a.namespace, p.a.ifname, p.b.namespace, p.b.ifname, p.b.mtu) for p in twin.links if p.kind == "stub"]
    assert stubs == [
        ("lt3f2a-leaf-01", "swp1", "lt3f2a-kvm-uat-01", "ens1f0", 9000),
        ("lt3f2a-leaf-03", "swp1", "lt3f2a-osc-01", "ens1f0", 9000),
    ]
    assert twin.stub_namespaces == ("lt3f2a-kvm-uat-01", "lt3f2a-osc-01") and prod.stub_namespaces == ()
    assert set(twin.namespaces) >= set(twin.stub_namespaces) and len(twin.nodes) == 6
    # nothing of it is the production lab's: `lab down` of the production lab never takes it
    assert not any(is_lab_namespace(n) for n in [*twin.namespaces, "lt3f2a-mgmt"])
    assert not any(is_lab_root_link(n) for n in [twin.bridge, *(s.mgmt_veth for s in twin.switches)])


def test_twin_names_fit_the_kernel_and_are_recognised() -> None:
    plan = plan_lab(model_of(generate_fabric(32, vnis_per_leaf=2)), twin_instance("00ff"), hosts=False)
    names = [plan.bridge, *(s.mgmt_veth for s in plan.switches)]
    assert all(len(n) <= IFNAMSIZ and n.startswith("lt00ff") for n in names)
    assert len(set(names)) == len(names) == 35
    for ns in [*plan.namespaces, "lt00ff-mgmt"]:
        inst = twin_of_namespace(ns)
        assert inst is not None and inst.prefix == "lt00ff" and inst.mgmt_namespace == "lt00ff-mgmt"
    assert twin_of_namespace("lx-leaf-01") is None and twin_of_namespace("lt00f-leaf-01") is None
    assert PRODUCTION.namespace("leaf-01") == namespace_name("leaf-01") and not PRODUCTION.is_twin
    for bad in ("3F2A", "3f2", "3f2a5", "../x"):
        with pytest.raises(LabError):
            twin_instance(bad)


def test_a_twin_can_be_a_slice_of_the_switches() -> None:
    from lintas.workers.model import load_model

    plan = plan_lab(load_model(TEMPLATE), twin_instance("0001"), only=frozenset({"spine-01", "leaf-01"}), hosts=False)
    assert [s.name for s in plan.switches] == ["leaf-01", "spine-01"]
    out = "lt0001-out-of-slice"
    # a built switch's ports to switches not built still exist (its rendered config names them),
    # cabled to nothing but a namespace without daemons, without the far end's address
    assert [(p.kind, p.a.namespace, p.a.ifname, p.b.namespace, p.b.address) for p in plan.links] == [
        ("fabric", "lt0001-spine-01", "swp1", "lt0001-leaf-01", "10.250.16.45/31"),
        ("stub", "lt0001-leaf-01", "swp52", out, None),
        ("stub", "lt0001-spine-01", "swp2", out, None),
        ("stub", "lt0001-spine-01", "swp3", out, None),
        ("stub", "lt0001-spine-01", "swp4", out, None),
        ("stub", "lt0001-leaf-01", "swp1", "lt0001-kvm-uat-01", None),
    ]
    assert plan.links[1].a.address == "10.250.16.47/31" and plan.links[1].a.mtu == 9216
    assert plan.stub_namespaces == (out, "lt0001-kvm-uat-01")
    assert [(e.namespace, e.ifname) for e in plan.ends_in(out)] == [(out, "o1"), (out, "o2"), (out, "o3"), (out, "o4")]
    assert ("leaf-02", "not in the slice") in plan.skipped
    # the whole model: no stub to a switch
    assert all(p.b.namespace != out for p in plan_lab(load_model(TEMPLATE), twin_instance("0001"), hosts=False).links)
    with pytest.raises(LabError, match="not switches of the model: leaf-99"):
        plan_lab(load_model(TEMPLATE), twin_instance("0001"), only=frozenset({"leaf-99"}))


def test_a_switch_cannot_take_the_twins_management_namespace() -> None:
    model = model_of({rel: text.replace("leaf-04", "mgmt") for rel, text in template_texts().items()})
    plan_lab(model)  # the production lab has no management namespace
    with pytest.raises(LabError, match="lt0002-mgmt"):
        plan_lab(model, twin_instance("0002"), hosts=False)


def test_twin_paths_are_all_under_its_own_directory() -> None:
    from pathlib import Path

    paths = twin_paths(Path("/home/x"), twin_instance("3f2a"))
    assert paths.run_dir("leaf-01") == Path("/run/lintas-twin/lt3f2a/lt3f2a-leaf-01")
    assert paths.lab_dir == Path("/run/lintas-twin/lt3f2a/ctl") and paths.key.is_relative_to(paths.run_root)
    assert paths.mount_marker == "lintas-twin/lt3f2a/"
    assert LabPaths(Path("/home/x")).mount_marker == "lintas-lab/lx-"
    assert LabPaths(Path("/home/x")).lab_dir == Path("/home/x/lab")


def test_a_port_to_a_switch_that_cannot_be_built_is_a_stub() -> None:
    """Issue 18: a switch left out for its platform (eos) is not built, like one out of the slice:
    the built switches' ports to it still exist (their rendered configs name them), as stubs."""
    model = model_of(as_eos(template_texts(), {"spine-02"}))
    twin = plan_lab(model, twin_instance("0002"), hosts=False)
    assert "spine-02" not in {s.name for s in twin.switches}
    assert ("spine-02", "platform eos cannot run in the lab (FRR switches only)") in twin.skipped
    out = "lt0002-out-of-slice"
    stubs = sorted(
        (p.a.namespace, p.a.ifname, p.b.namespace) for p in twin.links if p.kind == "stub" and p.b.namespace == out
    )
    assert stubs == [(f"lt0002-leaf-0{i}", "swp52", out) for i in range(1, 5)]
    assert all("(platform eos" in p.description for p in twin.links if p.b.namespace == out)
    assert all(p.a.address for p in twin.links if p.b.namespace == out)  # the leaf's own address stays
    # a slice holding leaf-01 and both spines: the same stub toward spine-02, whatever the reason it is not built
    sliced = plan_lab(model, twin_instance("0002"), only=frozenset({"leaf-01", "spine-01", "spine-02"}), hosts=False)
    assert ("lt0002-leaf-01", "swp52", out) in [(p.a.namespace, p.a.ifname, p.b.namespace) for p in sliced.links]
