"""The Linux planner, pure: linux.json + actual state -> iproute2 commands, in both kernel modes."""

from __future__ import annotations

import json

import pytest

from lintas.workers.drivers.frr.linux_apply import Plan, plan_linux, plan_restore
from lintas.workers.drivers.frr.linux_model import Desired, desired_state
from lintas.workers.drivers.frr.linux_schema import LinuxSpec, load_linux_spec
from lintas.workers.drivers.frr.state import Capabilities, Link, NetState, parse_state

FULL = Capabilities(vrf=True, vlan=True, vlan_filtering=True, vxlan=True)
BARE = Capabilities(vrf=False, vlan=False, vlan_filtering=False, vxlan=True)  # this machine's kernel
VRF_ONLY = Capabilities(vrf=True, vlan=False, vlan_filtering=False, vxlan=True)


def spec_of(rendered: dict[str, dict[str, str]], device: str) -> LinuxSpec:
    return load_linux_spec(rendered[device]["linux.json"])


def day0(spec: LinuxSpec) -> NetState:
    """A switch as the lab builds it: ports with MTU and addresses, eth0, nothing else."""
    links = {
        "lo": Link(
            "lo", "loopback", mtu=65536, up=True, mac="00:00:00:00:00:00", alias="", master="", addresses=(), vlans=()
        ),
        "eth0": Link(
            "eth0",
            "port",
            mtu=1500,
            up=True,
            mac="02:00:00:00:00:01",
            alias="",
            master="",
            addresses=(spec.management.address,),
            vlans=(),
        ),
    }
    for i, p in enumerate(spec.ports):
        links[p.name] = Link(
            p.name,
            "port",
            mtu=p.mtu,
            up=True,
            mac=f"02:00:00:00:01:{i:02x}",
            alias="",
            master="",
            addresses=tuple(p.addresses),
            vlans=(),
        )
    return NetState(links, {"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "0"})


def argvs(plan: Plan) -> list[tuple[str, ...]]:
    return [op.argv for op in plan.ops]


def index(plan: Plan, *argv: str) -> int:
    return argvs(plan).index(tuple(argv))


def converge_twice(actual: NetState, desired: Desired) -> tuple[Plan, Plan]:
    first = plan_linux(actual, desired)
    again = plan_linux(first.after, desired, desired.links)
    return first, again


def test_traditional_mode_one_bridge_per_vni_with_every_degradation_recorded(
    rendered: dict[str, dict[str, str]],
) -> None:
    spec = spec_of(rendered, "leaf-01")
    desired = desired_state(spec, BARE)
    assert desired.mode == "traditional"
    plan, again = converge_twice(day0(spec), desired)
    assert plan.errors == [] and again.ops == [] and again.errors == []
    ops = argvs(plan)
    for vni, vlan, gw in ((10010, 10, "10.30.10.1/24"), (10020, 20, "10.30.20.1/24"), (10200, 200, "10.20.0.1/24")):
        br, vx = f"br{vni}", f"vni{vni}"
        assert ("ip", "link", "add", br, "type", "bridge") in ops
        assert (
            "ip",
            "link",
            "add",
            vx,
            "type",
            "vxlan",
            "id",
            str(vni),
            "local",
            "10.250.1.11",
            "dstport",
            "4789",
            "nolearning",
        ) in ops
        assert index(plan, "ip", "link", "add", br, "type", "bridge") < index(
            plan, "ip", "link", "set", "dev", vx, "master", br
        )
        assert ("bridge", "link", "set", "dev", vx, "learning", "off", "neigh_suppress", "on") in ops
        # the SVI is the bridge: anycast gateway address and MAC, the network's MTU
        assert ("ip", "addr", "add", gw, "dev", br) in ops
        assert ("ip", "link", "set", "dev", br, "address", "00:1c:73:00:00:99") in ops
        assert ("ip", "link", "set", "dev", br, "mtu", "9000") in ops
        assert f"SVI vlan{vlan} (VLAN {vlan}) is bridge {br} (traditional bridge mode)" in desired.adaptations
    # host port: untagged VLAN 200 only; tagged 10,20 recorded as unsupported, never dropped silently
    assert ("ip", "link", "set", "dev", "swp1", "master", "br10200") in ops
    assert any("swp1: tagged VLANs 10,20 not carried" in u for u in desired.unsupported)
    # no VRFs and no L3 VNIs on this kernel: recorded
    assert not any(a[:4] == ("ip", "link", "add", "INFRA") or "vni50000" in a for a in ops)
    assert sum("no VRF devices" in u for u in desired.unsupported) == 2
    assert sum(u.startswith("L3 VNI 5000") for u in desired.unsupported) == 2
    # the ports keep their addresses; sysctls on; nothing ever touches eth0
    assert ("sysctl", "-qw", "net.ipv4.ip_forward=1") in ops
    assert not any("eth0" in a for a in ops)
    assert not any(a[:3] == ("ip", "addr", "del") for a in ops)


def test_traditional_mode_with_vrfs_binds_l3_vnis_through_their_bridge(rendered: dict[str, dict[str, str]]) -> None:
    spec = spec_of(rendered, "leaf-01")
    desired = desired_state(spec, VRF_ONLY)
    plan, again = converge_twice(day0(spec), desired)
    assert again.ops == []
    ops = argvs(plan)
    assert ("ip", "link", "add", "INFRA", "type", "vrf", "table", "51000") in ops
    assert ("ip", "link", "set", "dev", "br50000", "master", "INFRA") in ops
    assert ("ip", "link", "set", "dev", "br10010", "master", "UAT") in ops
    assert index(plan, "ip", "link", "add", "UAT", "type", "vrf", "table", "51001") < index(
        plan, "ip", "link", "set", "dev", "br10010", "master", "UAT"
    )
    assert not any(u.startswith(("L3 VNI", "vrf ")) for u in desired.unsupported)


def test_vlan_aware_mode_applies_linux_json_as_designed(rendered: dict[str, dict[str, str]]) -> None:
    spec = spec_of(rendered, "leaf-01")
    desired = desired_state(spec, FULL)
    assert desired.mode == "vlan_aware" and desired.unsupported == []
    plan, again = converge_twice(day0(spec), desired)
    assert plan.errors == [] and again.ops == []
    ops = argvs(plan)
    assert ("ip", "link", "add", "bridge", "type", "bridge", "vlan_filtering", "1", "vlan_default_pvid", "0") in ops
    for vid in (10, 20, 200, 3900, 3901):
        assert ("bridge", "vlan", "add", "dev", "bridge", "vid", str(vid), "self") in ops
    assert ("bridge", "vlan", "add", "dev", "vni10010", "vid", "10", "pvid", "untagged") in ops
    assert ("bridge", "vlan", "add", "dev", "vni50000", "vid", "3900", "pvid", "untagged") in ops
    assert ("bridge", "vlan", "add", "dev", "swp1", "vid", "200", "pvid", "untagged") in ops
    assert ("bridge", "vlan", "add", "dev", "swp1", "vid", "10") in ops
    assert ("bridge", "vlan", "add", "dev", "swp1", "vid", "20") in ops
    svi = ("ip", "link", "add", "link", "bridge", "name", "vlan10", "type", "vlan", "id", "10")
    assert svi in ops
    # dependency order: VRF and the bridge's VLAN before the SVI; the SVI before its VRF membership and address
    assert index(plan, "ip", "link", "add", "UAT", "type", "vrf", "table", "51001") < ops.index(svi)
    assert index(plan, "bridge", "vlan", "add", "dev", "bridge", "vid", "10", "self") < ops.index(svi)
    assert ops.index(svi) < index(plan, "ip", "link", "set", "dev", "vlan10", "master", "UAT")
    assert ("ip", "addr", "add", "10.30.10.1/24", "dev", "vlan10") in ops
    assert ("ip", "link", "set", "dev", "vlan10", "address", "00:1c:73:00:00:99") in ops
    assert not any(a[-2:] == ("address", "00:1c:73:00:00:99") and "vlan3900" in a for a in ops)  # own router MAC


def test_restore_plan_undoes_a_commit(rendered: dict[str, dict[str, str]]) -> None:
    for caps in (BARE, FULL):
        spec = spec_of(rendered, "leaf-01")
        before = day0(spec)
        plan = plan_linux(before, desired_state(spec, caps))
        restore = plan_restore(before, plan.after, plan.touched, plan.touched_sysctls)
        assert restore.errors == []
        assert set(restore.after.links) == set(before.links)
        for name, link in before.links.items():
            got = restore.after.links[name]
            assert (got.mtu, got.up, got.master, got.addresses, got.alias) == (
                link.mtu,
                link.up,
                link.master,
                link.addresses,
                link.alias,
            ), name
        assert restore.after.sysctls == before.sysctls
        deletes = [a for a in argvs(restore) if a[:3] == ("ip", "link", "del")]
        assert deletes and all(a[-1] not in before.links for a in deletes)


def test_ownership_deletes_only_what_the_last_commit_made(rendered: dict[str, dict[str, str]]) -> None:
    spec = spec_of(rendered, "leaf-01")
    data = json.loads(rendered["leaf-01"]["linux.json"])
    data["vxlans"].append({**data["vxlans"][0], "name": "vni10999", "vni": 10999, "vlan": 999})
    data["svis"].append({**data["svis"][0], "name": "vlan999", "vlan": 999, "addresses": ["10.99.0.1/24"]})
    data["bridge"]["vlans"].append(999)
    bigger = desired_state(LinuxSpec.model_validate(data), BARE)
    first = plan_linux(day0(spec), bigger)
    state = first.after
    state.links["br4242"] = Link(
        "br4242", "bridge", info=(("vlan_filtering", False),), mtu=1500, up=True, master="", addresses=(), vlans=()
    )  # somebody else's bridge
    smaller = desired_state(spec, BARE)
    plan = plan_linux(state, smaller, bigger.links)
    dels = [a for a in argvs(plan) if a[:3] == ("ip", "link", "del")]
    assert dels == [("ip", "link", "del", "dev", "vni10999"), ("ip", "link", "del", "dev", "br10999")]
    assert "br4242" in plan.after.links
    # a merge never deletes
    assert not any(a[:3] == ("ip", "link", "del") for a in argvs(plan_linux(state, smaller, bigger.links, merge=True)))
    # a port the last commit managed and the candidate drops is released
    data = json.loads(rendered["leaf-01"]["linux.json"])
    data["ports"] = [p for p in data["ports"] if p["name"] != "swp1"]
    no_host = desired_state(LinuxSpec.model_validate(data), BARE)
    released = plan_linux(state, no_host, bigger.links)
    assert ("ip", "link", "set", "dev", "swp1", "nomaster") in argvs(released)


def test_conflicts_are_errors_and_the_management_interface_is_never_planned(
    rendered: dict[str, dict[str, str]],
) -> None:
    spec = spec_of(rendered, "leaf-01")
    state = day0(spec)
    state.links["br10010"] = Link("br10010", "port", mtu=1500, up=True, master="", addresses=(), vlans=())
    plan = plan_linux(state, desired_state(spec, BARE))
    assert any("br10010: the device has a port" in e for e in plan.errors)
    data = json.loads(rendered["leaf-01"]["linux.json"])
    data["ports"].append({**data["ports"][1], "name": "eth0", "addresses": ["10.9.9.9/31"]})
    plan = plan_linux(day0(spec), desired_state(LinuxSpec.model_validate(data), BARE))
    assert any("eth0 is the management interface" in e for e in plan.errors)
    assert not any("eth0" in op.argv for op in plan.ops)
    # a VXLAN device with another VTEP address is re-created, not left stale
    first = plan_linux(day0(spec), desired_state(spec, BARE)).after
    vx = first.links["vni10010"]
    first.links["vni10010"] = vx.but(info=tuple((k, "10.9.9.9" if k == "local" else v) for k, v in vx.info))
    fix = argvs(plan_linux(first, desired_state(spec, BARE)))
    assert fix[0] == ("ip", "link", "del", "dev", "vni10010") and fix[1][:4] == ("ip", "link", "add", "vni10010")
    assert ("ip", "link", "set", "dev", "vni10010", "master", "br10010") in fix


@pytest.mark.parametrize("device", ["spine-01", "leaf-03"])
def test_every_switch_of_the_template_plans_cleanly(rendered: dict[str, dict[str, str]], device: str) -> None:
    spec = spec_of(rendered, device)
    for caps in (BARE, FULL, VRF_ONLY):
        plan, again = converge_twice(day0(spec), desired_state(spec, caps))
        assert plan.errors == [] and again.ops == []


def test_parse_state_reads_iproute2_json() -> None:
    links = [
        {
            "ifname": "lo",
            "flags": ["LOOPBACK", "UP", "LOWER_UP"],
            "mtu": 65536,
            "link_type": "loopback",
            "address": "00:00:00:00:00:00",
        },
        {
            "ifname": "swp1",
            "flags": ["BROADCAST", "UP", "LOWER_UP"],
            "mtu": 9216,
            "master": "br10200",
            "link_type": "ether",
            "address": "EE:19:6F:54:DF:A4",
            "ifalias": "kvm-uat-01_ens1f0",
            "linkinfo": {
                "info_kind": "veth",
                "info_slave_kind": "bridge",
                "info_slave_data": {"learning": True, "neigh_suppress": False},
            },
        },
        {
            "ifname": "vni10010",
            "flags": ["BROADCAST", "UP"],
            "mtu": 9166,
            "master": "br10010",
            "link_type": "ether",
            "address": "76:56:cd:47:b4:a6",
            "linkinfo": {
                "info_kind": "vxlan",
                "info_data": {"id": 10010, "local": "10.250.1.11", "port": 4789, "learning": False},
                "info_slave_kind": "bridge",
                "info_slave_data": {"learning": False, "neigh_suppress": True},
            },
        },
        {
            "ifname": "br10010",
            "flags": ["BROADCAST"],
            "mtu": 9000,
            "link_type": "ether",
            "address": "00:1c:73:00:00:99",
            "linkinfo": {"info_kind": "bridge", "info_data": {"vlan_filtering": 0}},
        },
    ]
    addrs = [
        {
            "ifname": "lo",
            "addr_info": [
                {"family": "inet", "local": "127.0.0.1", "prefixlen": 8},
                {"family": "inet", "local": "10.250.0.11", "prefixlen": 32},
                {"family": "inet6", "local": "::1", "prefixlen": 128},
            ],
        },
        {
            "ifname": "br10010",
            "addr_info": [
                {"family": "inet", "local": "10.30.10.1", "prefixlen": 24},
                {"family": "inet6", "local": "fe80::21c:73ff:fe00:99", "prefixlen": 64},
            ],
        },
    ]
    vlans = [
        {"ifname": "swp1", "vlans": [{"vlan": 200, "flags": ["PVID", "Egress Untagged"]}, {"vlan": 10, "vlanEnd": 11}]}
    ]
    st = parse_state(links, addrs, vlans, {"net.ipv4.ip_forward": "1"})
    assert st.links["lo"].kind == "loopback" and st.links["lo"].addresses == ("10.250.0.11/32",)
    swp1 = st.links["swp1"]
    assert (swp1.kind, swp1.master, swp1.alias, swp1.mac) == (
        "port",
        "br10200",
        "kvm-uat-01_ens1f0",
        "ee:19:6f:54:df:a4",
    )
    assert swp1.vlans == ((10, False, False), (11, False, False), (200, True, True))
    assert dict(swp1.port) == {"learning": True, "neigh_suppress": False}
    vx = st.links["vni10010"]
    assert vx.info_dict == {"id": 10010, "local": "10.250.1.11", "dstport": 4789, "learning": False}
    assert dict(vx.port) == {"learning": False, "neigh_suppress": True}
    br = st.links["br10010"]
    assert br.addresses == ("10.30.10.1/24",) and br.up is False and br.info_dict == {"vlan_filtering": False}
    assert NetState.from_json(json.loads(json.dumps(st.to_json()))) == st
