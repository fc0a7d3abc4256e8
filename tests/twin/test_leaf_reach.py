"""Which unchanged hosts a leaf's change reaches (issue 18, point 4: "hosts when the change touches
their leaf"; workers/twin/leaf_reach.py), on the template's leaf-01 (kvm-uat-01 on swp1: the tunnel
network's VLAN 200 untagged, uat-web and uat-app tagged), rendered for real before and after."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator

import pytest

from lintas.workers.model import InfraModel
from lintas.workers.render.env import Renderer
from lintas.workers.render.plan import ArtifactDiff, Plan, TargetPlan
from lintas.workers.render.targets import render_targets
from lintas.workers.twin.leaf_reach import (
    FRR,
    LeafChange,
    frr_lines,
    host_reach,
    leaf_changes,
    reached_hosts,
    withdrawn_vnis,
)
from lintas.workers.twin.slice import Slice, slice_of
from tests.render import model_of, template_texts

UAT_DB = (
    "\n  - name: uat-db\n    vrf: UAT\n    vlan: 30\n    vni: 10030\n"
    "    gateway: 10.30.30.1/24\n    mtu: 9000\n    leaves: [leaf-01, leaf-02]\n"
)


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    with Renderer() as r:
        yield r


def leaf01(model: InfraModel, renderer: Renderer) -> dict[str, str]:
    return render_targets(model, ["leaf-01"], renderer)["leaf-01"]


def variant(edit: tuple[str, str] | None = None, append: str = "") -> InfraModel:
    texts = template_texts()
    t = texts["fabric/tenants.yaml"]
    if edit is not None:
        assert edit[0] in t
        t = t.replace(*edit)
    texts["fabric/tenants.yaml"] = t + append
    return model_of(texts)


@pytest.fixture(scope="module")
def base(renderer: Renderer) -> tuple[InfraModel, dict[str, str]]:
    m = variant()
    return m, leaf01(m, renderer)


def reach_of(base: tuple[InfraModel, dict[str, str]], after: dict[str, str], model: InfraModel) -> dict[str, list[str]]:
    return reached_hosts(model, ["leaf-01"], {"leaf-01": LeafChange("leaf-01", base[1], after)})


def test_a_vni_the_hosts_port_does_not_carry_does_not_reach_it(
    base: tuple[InfraModel, dict[str, str]], renderer: Renderer
) -> None:
    m = variant(append=UAT_DB)  # uat-db (VLAN 30) on leaf-01: the VRF UAT is kvm-uat-01's too
    after = leaf01(m, renderer)
    assert after != base[1]
    assert reach_of(base, after, m) == {}


def test_a_gateway_of_a_network_the_host_carries_reaches_it(
    base: tuple[InfraModel, dict[str, str]], renderer: Renderer
) -> None:
    m = variant(("gateway: 10.30.10.1/24", "gateway: 10.30.10.254/24"))  # uat-web, tagged on swp1
    assert reach_of(base, leaf01(m, renderer), m) == {"kvm-uat-01": ["linux.json: svis vlan10"]}


def test_the_tunnel_networks_mtu_reaches_it(base: tuple[InfraModel, dict[str, str]], renderer: Renderer) -> None:
    m = variant(("    mtu: 9000\n    leaves: all", "    mtu: 9100\n    leaves: all"))  # infra-tunnel
    why = reach_of(base, leaf01(m, renderer), m)["kvm-uat-01"]
    assert why == ["linux.json: svis vlan200"]


def test_frr_stanzas_of_its_port_and_of_global_routing_reach_it_others_do_not(
    base: tuple[InfraModel, dict[str, str]],
) -> None:
    m, before = base

    def with_frr(extra: str) -> dict[str, str]:
        return {**before, FRR: before[FRR] + extra}

    assert reach_of(base, with_frr("interface swp1\n shutdown\nexit\n!\n"), m) == {
        "kvm-uat-01": ["frr.conf: interface swp1"]
    }
    assert reach_of(base, with_frr("interface vlan30\n description other tenant\nexit\n!\n"), m) == {}
    assert reach_of(base, with_frr("interface vlan200\n description tunnels\nexit\n!\n"), m) == {
        "kvm-uat-01": ["frr.conf: interface vlan200"]
    }
    routing = before[FRR].replace(
        "route-map RM-UNDERLAY-OUT permit 10\n match ip address prefix-list PL-LOOPBACKS-EVPN-OVERLAY\n",
        "route-map RM-UNDERLAY-OUT permit 10\n match ip address prefix-list PL-NOTHING\n",
    )
    assert routing != before[FRR]
    assert reach_of(base, {**before, FRR: routing}, m) == {
        "kvm-uat-01": ["frr.conf: route-map RM-UNDERLAY-OUT permit 10"]
    }
    # an EVPN VNI of another network, nested three stanzas deep, is elsewhere; the tunnel VNI's is not
    other = before[FRR].replace("  vni 10010\n", "  vni 10010\n   rd 10.250.0.11:10010\n")
    assert reach_of(base, {**before, FRR: other}, m) == {
        "kvm-uat-01": ["frr.conf: router bgp 65111"]
    }  # uat-web: the host's
    foreign = before[FRR].replace(
        "  exit-vni\n exit-address-family\nexit\n",
        "  exit-vni\n  vni 10999\n   rd 1:1\n  exit-vni\n exit-address-family\nexit\n",
        1,
    )
    assert foreign != before[FRR]
    assert reach_of(base, {**before, FRR: foreign}, m) == {}


def test_a_new_leaf_an_unread_one_and_an_unknown_artifact_reach_every_host_on_it(
    base: tuple[InfraModel, dict[str, str]],
) -> None:
    m, before = base
    host = m.hosts["kvm-uat-01"]
    assert host_reach(host, LeafChange("leaf-01", None, before)) == ["new (not deployed before)"]
    assert reached_hosts(m, ["leaf-01", "spine-01"], {}) == {"kvm-uat-01": ["its configs not read"]}
    odd = host_reach(host, LeafChange("leaf-01", {**before, "acl.json": "{}"}, {**before, "acl.json": "[]"}))
    assert odd == ["acl.json changed (not read: assumed to reach it)"]
    assert host_reach(host, LeafChange("leaf-01", before, {**before, "linux.json": "{not json"})) == [
        "linux.json unreadable (assumed to reach it)"
    ]
    assert host_reach(host, LeafChange("leaf-01", before, dict(before))) == []


def test_frr_lines_carry_their_enclosing_stanzas() -> None:
    text = "router bgp 65111\n !\n address-family l2vpn evpn\n  vni 10030\n   rd 1:1\n  exit-vni\n exit-address-family\nexit\n!\n"
    assert frr_lines(text) == {
        ("router bgp 65111",),
        ("router bgp 65111", "address-family l2vpn evpn"),
        ("router bgp 65111", "address-family l2vpn evpn", "vni 10030"),
        ("router bgp 65111", "address-family l2vpn evpn", "vni 10030", "rd 1:1"),
    }


def _cid(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Plans:
    """Plans of leaf-01's change as the twin stage reads them (content ids, the changed artifacts' ids
    before), and the artifact store behind them."""

    def __init__(self, before: dict[str, str]) -> None:
        self.before, self.blobs = before, dict[str, bytes]()

    def plan_of(self, after: dict[str, str]) -> Plan:
        for t in (*self.before.values(), *after.values()):
            self.blobs[_cid(t)] = t.encode()
        diffs = [
            ArtifactDiff(name=n, before=_cid(self.before[n]), after=_cid(after[n]), added=1, removed=1, diff="")
            for n in sorted(after)
            if after[n] != self.before[n]
        ]
        arts = {n: _cid(t) for n, t in after.items()}
        target = TargetPlan(target="leaf-01", kind="device", status="changed", artifacts=arts, diffs=diffs)
        return Plan(repo="infra", sha="b" * 40, against="deployed", targets={"leaf-01": target})

    async def fetch(self, cid: str) -> bytes | None:
        return self.blobs.get(cid)

    def slice_of(self, m: InfraModel, after: dict[str, str]) -> Slice:
        plan = self.plan_of(after)
        return slice_of(m, plan, asyncio.run(leaf_changes(m, plan, self.fetch)))


def test_the_slice_builds_a_host_its_leafs_change_reaches_and_not_one_it_does_not(
    base: tuple[InfraModel, dict[str, str]], renderer: Renderer
) -> None:
    """Through the plan as the twin stage reads it (content ids, the changed artifacts' ids before)."""
    plans = Plans(base[1])

    def cut_of(m: InfraModel) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        cut = plans.slice_of(m, leaf01(m, renderer))
        return cut.hosts, cut.switches

    hosts, switches = cut_of(variant(append=UAT_DB))
    assert hosts == {} and "leaf-01" in switches  # the one-VNI change: no host built
    hosts, switches = cut_of(variant(("gateway: 10.30.10.1/24", "gateway: 10.30.10.254/24")))
    assert hosts == {"kvm-uat-01": ["its leaf leaf-01's change reaches it: linux.json: svis vlan10"]}
    assert "uplink leaf of host kvm-uat-01" in switches["leaf-01"] and {"spine-01", "spine-02"} <= set(switches)
    # the same change, production's blobs no longer stored: the host is built all the same (never too small)
    m = variant(append=UAT_DB)
    after = leaf01(m, renderer)
    plan = plans.plan_of(after)
    plans.blobs = {_cid(t): t.encode() for t in after.values()}
    cut = slice_of(m, plan, asyncio.run(leaf_changes(m, plan, plans.fetch)))
    assert cut.hosts == {"kvm-uat-01": ["its leaf leaf-01's change reaches it: its configs not read"]}


X_NET = (
    "\n  - name: x-net\n    vrf: UAT\n    vlan: 77\n    vni: 10777\n"
    "    gateway: 10.30.77.1/24\n    mtu: 9000\n    leaves: [leaf-01, leaf-04]\n"
)


def test_a_vni_a_leaf_withdraws_is_proven_on_a_leaf_still_carrying_it(renderer: Renderer) -> None:
    """x-net (VNI 10777) on leaf-01 and leaf-04, then on leaf-04 only: leaf-01's new configs no longer
    name it, yet leaf-04 must see leaf-01's VTEP gone, so the slice holds leaf-04 (nothing else of
    leaf-01's networks brings it: leaf-02 carries them all)."""
    before = leaf01(variant(append=X_NET), renderer)
    m = variant(append=X_NET.replace("[leaf-01, leaf-04]", "[leaf-04]"))
    plans = Plans(before)
    cut = plans.slice_of(m, leaf01(m, renderer))
    assert cut.switches["leaf-04"] == ["carries VNI 10777 unchanged (withdrawn from leaf-01)"]
    assert withdrawn_vnis(asyncio.run(leaf_changes(m, plans.plan_of(leaf01(m, renderer)), plans.fetch))) == {
        "leaf-01": [10777]
    }
    assert "leaf-04" not in slice_of(m, plans.plan_of(leaf01(m, renderer))).switches  # without the configs read
