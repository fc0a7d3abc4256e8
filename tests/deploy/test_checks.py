"""Verification against the model (workers.deploy.checks): expected state of the template, and the
checks evaluated on hand-built observations."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lintas.workers.deploy.checks import (
    IP_ICMP_OVERHEAD,
    Check,
    Expected,
    Observed,
    Ping,
    evaluate,
    expected_state,
    failing,
    summary,
)
from lintas.workers.model import load_model
from lintas.workers.model.model import InfraModel

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "gitops-repo-template"

SPINE_P2P = {"spine-01": "10.250.16.44", "spine-02": "10.250.16.46"}  # leaf-01's uplinks
LOOPBACKS = {
    "spine-01": "10.250.0.1",
    "spine-02": "10.250.0.2",
    "leaf-01": "10.250.0.11",
    "leaf-02": "10.250.0.12",
    "leaf-03": "10.250.0.13",
    "leaf-04": "10.250.0.14",
}
VTEPS = {"leaf-01": "10.250.1.11", "leaf-02": "10.250.1.12", "leaf-03": "10.250.1.13", "leaf-04": "10.250.1.14"}


@pytest.fixture(scope="module")
def model() -> InfraModel:
    return load_model(TEMPLATE)


@pytest.fixture(scope="module")
def leaf01(model: InfraModel) -> Expected:
    return expected_state(model, "leaf-01")


def healthy(exp: Expected) -> Observed:
    """What a switch that matches ``exp`` in every respect reports."""
    bgp = {
        "global": {
            "router_id": "10.250.0.11",
            "peers": {
                ip: {
                    "is_up": True,
                    "is_enabled": True,
                    "local_as": 65111,
                    "remote_as": 65000,
                    "address_family": {
                        "ipv4": {"received_prefixes": 7, "accepted_prefixes": 7, "sent_prefixes": 3},
                        "l2vpn_evpn": {"received_prefixes": 12, "accepted_prefixes": 12, "sent_prefixes": 4},
                    },
                }
                for ip in exp.peers
            },
        }
    }
    routes = {
        f"{p}/32": {
            "protocol": "bgp",
            "selected": True,
            "installed": True,
            "nexthops": ["10.250.16.44", "10.250.16.46"],
        }
        for p in exp.prefixes
    }
    vnis: dict[int, dict[str, Any]] = {
        vni: {"type": "L2", "remote_vteps": list(remotes)} for vni, remotes in exp.vnis.items()
    }
    vnis.update({vni: {"type": "L3", "vrf": vrf, "remote_vteps": []} for vni, vrf in exp.l3vnis.items()})
    interfaces = {port: {"is_up": True, "is_enabled": True, "mtu": mtu} for port, mtu in exp.interfaces.items()}
    kernel = {"mode": "full", "capabilities": {"vrf": True, "vlan": True, "vxlan": True}}
    pings = {
        p.key: {
            "success": {
                "probes_sent": 1,
                "packet_loss": 0,
                "rtt_min": 0.1,
                "rtt_max": 0.1,
                "rtt_avg": 0.1,
                "rtt_stddev": 0.0,
                "results": [],
            }
        }
        for p in exp.pings
    }
    return Observed(bgp=bgp, routes=routes, vnis=vnis, interfaces=interfaces, kernel=kernel, pings=pings)


def only(checks: list[Check], kind: str, subject: str) -> Check:
    hits = [c for c in checks if c.check == kind and c.subject == subject]
    assert len(hits) == 1, [c.subject for c in checks if c.check == kind]
    return hits[0]


def failed_subjects(checks: list[Check]) -> list[tuple[str, str]]:
    return [(c.check, c.subject) for c in failing(checks)]


# -- expected_state on the template ---------------------------------------------------------------


def test_leaf_peers_are_the_spines_p2p_addresses(leaf01: Expected) -> None:
    assert leaf01.device == "leaf-01"
    assert leaf01.peers == {"10.250.16.44": "spine-01", "10.250.16.46": "spine-02"}


def test_spine_peers_are_every_leafs_p2p_address(model: InfraModel) -> None:
    exp = expected_state(model, "spine-02")
    assert exp.peers == {
        "10.250.16.47": "leaf-01",
        "10.250.16.51": "leaf-02",
        "10.250.16.55": "leaf-03",
        "10.250.16.59": "leaf-04",
    }


def test_spine_expects_every_leaf_loopback_and_vtep_but_not_the_other_spine(model: InfraModel) -> None:
    exp = expected_state(model, "spine-01")
    leaves = [LOOPBACKS[f"leaf-0{i}"] for i in range(1, 5)] + list(VTEPS.values())
    assert exp.prefixes == ["10.250.0.1", *leaves]  # its own loopback, not spine-02's (same ASN)
    assert "10.250.0.2" not in exp.prefixes
    assert expected_state(model, "spine-02").prefixes == ["10.250.0.2", *leaves]


def test_spine_expects_no_vnis_no_df_pings(model: InfraModel) -> None:
    exp = expected_state(model, "spine-01")
    assert exp.vnis == {} and exp.l3vnis == {}
    assert all(not p.df for p in exp.pings)
    assert exp.interfaces == {"swp1": 9216, "swp2": 9216, "swp3": 9216, "swp4": 9216}


def test_leaf_expects_every_loopback_and_vtep_sorted_numerically(leaf01: Expected) -> None:
    assert leaf01.prefixes == sorted(
        [*LOOPBACKS.values(), *VTEPS.values()], key=lambda s: tuple(int(x) for x in s.split("."))
    )
    assert "10.250.0.2" in leaf01.prefixes and "10.250.0.1" in leaf01.prefixes


def test_leaf_l2_vnis_expect_the_vteps_of_the_other_leaves_carrying_the_network(model: InfraModel) -> None:
    assert expected_state(model, "leaf-01").vnis == {
        10200: ["10.250.1.12", "10.250.1.13", "10.250.1.14"],  # infra-tunnel: all leaves
        10010: ["10.250.1.12", "10.250.1.13", "10.250.1.14"],  # uat-web: all four
        10020: ["10.250.1.12"],  # uat-app: leaf-01 and leaf-02 only
    }
    assert expected_state(model, "leaf-02").vnis[10020] == ["10.250.1.11"]
    leaf03 = expected_state(model, "leaf-03")
    assert 10020 not in leaf03.vnis  # uat-app is not on leaf-03
    assert leaf03.vnis[10010] == ["10.250.1.11", "10.250.1.12", "10.250.1.14"]


def test_leaf_l3_vnis_of_its_vrfs(leaf01: Expected) -> None:
    assert leaf01.l3vnis == {50000: "INFRA", 50001: "UAT"}


def test_leaf_interface_mtus_cover_uplinks_and_host_ports(model: InfraModel, leaf01: Expected) -> None:
    assert leaf01.interfaces == {"swp51": 9216, "swp52": 9216, "swp1": 9216}  # swp1: kvm-uat-01
    assert expected_state(model, "leaf-02").interfaces == {"swp51": 9216, "swp52": 9216}  # no host


def test_leaf_pings_each_uplink_peer_from_its_own_p2p_address(leaf01: Expected) -> None:
    plain = [p for p in leaf01.pings if not p.df]
    assert plain == [Ping("10.250.16.44", "10.250.16.45", 56, False), Ping("10.250.16.46", "10.250.16.47", 56, False)]


def test_df_pings_full_fabric_mtu_from_own_vtep_to_every_other_vtep(leaf01: Expected) -> None:
    df = [p for p in leaf01.pings if p.df]
    assert [p.destination for p in df] == ["10.250.1.12", "10.250.1.13", "10.250.1.14"]
    assert {p.source for p in df} == {"10.250.1.11"}
    assert {p.size for p in df} == {9216 - 28}
    assert IP_ICMP_OVERHEAD == 28


def test_pings_false_plans_no_pings(model: InfraModel) -> None:
    assert expected_state(model, "leaf-01", pings=False).pings == []
    assert expected_state(model, "spine-01", pings=False).pings == []


def test_fabric_mtu_drives_interface_mtus_and_df_size(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(TEMPLATE, repo)
    fabric = repo / "fabric" / "fabric.yaml"
    text = fabric.read_text()
    assert "mtu: 9216" in text
    fabric.write_text(text.replace("mtu: 9216", "mtu: 9100", 1))
    exp = expected_state(load_model(repo), "leaf-01")
    assert exp.interfaces == {"swp51": 9100, "swp52": 9100, "swp1": 9100}
    assert {p.size for p in exp.pings if p.df} == {9072}


def test_ping_key_names_source_destination_and_df_size() -> None:
    assert Ping("10.0.0.2", "10.0.0.1", 56, False).key == "10.0.0.1->10.0.0.2"
    assert Ping("10.0.0.2", "10.0.0.1", 9188, True).key == "10.0.0.1->10.0.0.2 df 9188"


# -- evaluate ------------------------------------------------------------------------------------


def test_all_pass(leaf01: Expected) -> None:
    checks = evaluate(leaf01, healthy(leaf01), with_pings=True)
    assert failing(checks) == []
    counts = {
        k: sum(c.check == k for c in checks) for k in ("bgp", "rib", "vni", "l3vni", "interface", "ping", "ping-df")
    }
    assert counts == {"bgp": 2, "rib": 10, "vni": 3, "l3vni": 2, "interface": 3, "ping": 2, "ping-df": 3}
    assert summary(checks) == {"checks": 25, "passed": 25, "failed": 0, "not_applicable": 0}
    assert all(c.device == "leaf-01" for c in checks)


def test_without_pings_no_ping_checks(leaf01: Expected) -> None:
    checks = evaluate(leaf01, healthy(leaf01), with_pings=False)
    assert not [c for c in checks if c.check in ("ping", "ping-df")]
    assert summary(checks) == {"checks": 20, "passed": 20, "failed": 0, "not_applicable": 0}


def test_spine_all_pass(model: InfraModel) -> None:
    exp = expected_state(model, "spine-01")
    checks = evaluate(exp, healthy(exp), with_pings=True)
    assert summary(checks) == {"checks": 4 + 9 + 4 + 4, "passed": 21, "failed": 0, "not_applicable": 0}


def test_bgp_neighbor_down(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    obs.bgp["global"]["peers"]["10.250.16.46"]["is_up"] = False
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("bgp", "10.250.16.46 (spine-02)")]
    c = only(checks, "bgp", "10.250.16.46 (spine-02)")
    assert "down" in c.observed
    assert only(checks, "bgp", "10.250.16.44 (spine-01)").passed is True


def test_bgp_neighbor_missing(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    del obs.bgp["global"]["peers"]["10.250.16.44"]
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("bgp", "10.250.16.44 (spine-01)")]
    assert only(checks, "bgp", "10.250.16.44 (spine-01)").observed == "no such neighbor"


def test_no_bgp_at_all_fails_every_session(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    obs.bgp = {}
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("bgp", "10.250.16.44 (spine-01)"), ("bgp", "10.250.16.46 (spine-02)")]


def test_bgp_neighbor_with_no_ipv4_prefixes_received(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    obs.bgp["global"]["peers"]["10.250.16.44"]["address_family"]["ipv4"]["received_prefixes"] = 0
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("bgp", "10.250.16.44 (spine-01)")]
    assert "ipv4 prefixes 0" in only(checks, "bgp", "10.250.16.44 (spine-01)").observed


def test_bgp_neighbor_without_ipv4_family(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    del obs.bgp["global"]["peers"]["10.250.16.44"]["address_family"]["ipv4"]
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("bgp", "10.250.16.44 (spine-01)")]


def test_bgp_neighbor_without_evpn_family(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    del obs.bgp["global"]["peers"]["10.250.16.46"]["address_family"]["l2vpn_evpn"]
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("bgp", "10.250.16.46 (spine-02)")]
    assert "['ipv4']" in only(checks, "bgp", "10.250.16.46 (spine-02)").observed


def test_missing_rib_prefix(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    del obs.routes["10.250.1.13/32"]
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("rib", "10.250.1.13/32")]
    assert only(checks, "rib", "10.250.1.13/32").observed == "absent"
    assert only(checks, "rib", "10.250.1.12/32").observed == "bgp via 10.250.16.44, 10.250.16.46"


def test_rib_prefix_present_but_not_selected_fails(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    obs.routes["10.250.0.2/32"]["selected"] = False
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("rib", "10.250.0.2/32")]


def test_rib_connected_route_without_ip_nexthop_reads_connected(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    obs.routes["10.250.0.11/32"] = {"protocol": "connected", "selected": True, "installed": True, "nexthops": []}
    checks = evaluate(leaf01, obs, with_pings=False)
    c = only(checks, "rib", "10.250.0.11/32")
    assert c.passed is True and c.observed == "connected via connected"


def test_vni_with_one_remote_vtep_missing_and_one_extra(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    obs.vnis[10010]["remote_vteps"] = ["10.250.1.12", "10.250.1.14", "10.250.1.99"]  # .13 missing, .99 extra
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("vni", "10010")]
    c = only(checks, "vni", "10010")
    assert c.expected == {"remote_vteps": ["10.250.1.12", "10.250.1.13", "10.250.1.14"]}
    assert c.observed == {"remote_vteps": ["10.250.1.12", "10.250.1.14", "10.250.1.99"]}


@pytest.mark.parametrize(
    "remotes", [["10.250.1.12", "10.250.1.13"], ["10.250.1.12", "10.250.1.13", "10.250.1.14", "10.250.1.15"], []]
)
def test_vni_remote_vtep_set_must_match_exactly(leaf01: Expected, remotes: list[str]) -> None:
    obs = healthy(leaf01)
    obs.vnis[10200]["remote_vteps"] = remotes
    assert failed_subjects(evaluate(leaf01, obs, with_pings=False)) == [("vni", "10200")]


def test_vni_absent(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    del obs.vnis[10020]
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("vni", "10020")]
    assert only(checks, "vni", "10020").observed == "VNI absent"


def test_l3vni_not_applicable_without_kernel_vrfs(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    obs.kernel["capabilities"]["vrf"] = False
    for vni in leaf01.l3vnis:
        del obs.vnis[vni]  # a kernel without VRFs builds no L3 VNI: still not a failure
    checks = evaluate(leaf01, obs, with_pings=False)
    l3 = [c for c in checks if c.check == "l3vni"]
    assert [c.subject for c in l3] == ["50000 (INFRA)", "50001 (UAT)"]
    assert all(c.passed is None for c in l3)
    assert all("not applicable" in c.note for c in l3)
    assert failing(checks) == []
    assert summary(checks) == {"checks": 20, "passed": 18, "failed": 0, "not_applicable": 2}


def test_l3vni_checked_with_kernel_vrfs(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    del obs.vnis[50001]
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("l3vni", "50001 (UAT)")]
    assert only(checks, "l3vni", "50001 (UAT)").observed == "absent"
    assert only(checks, "l3vni", "50000 (INFRA)").passed is True
    assert summary(checks)["not_applicable"] == 0


def test_l3vni_checked_when_the_kernel_reports_no_capabilities(leaf01: Expected) -> None:
    # only a kernel that reports it has no VRFs makes the check not applicable
    obs = healthy(leaf01)
    obs.kernel = {}
    del obs.vnis[50000]
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("l3vni", "50000 (INFRA)")]
    assert only(checks, "l3vni", "50001 (UAT)").passed is True


def test_l3vni_reported_as_l2_fails(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    obs.vnis[50000]["type"] = "L2"
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("l3vni", "50000 (INFRA)")]


def test_interface_mtu_mismatch(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    obs.interfaces["swp52"]["mtu"] = 1500
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("interface", "swp52")]
    c = only(checks, "interface", "swp52")
    assert c.expected == {"up": True, "mtu": 9216}
    assert c.observed == {"up": True, "mtu": 1500}


def test_interface_down_or_absent(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    obs.interfaces["swp51"]["is_up"] = False
    del obs.interfaces["swp1"]
    checks = evaluate(leaf01, obs, with_pings=False)
    assert failed_subjects(checks) == [("interface", "swp1"), ("interface", "swp51")]
    assert only(checks, "interface", "swp1").observed == "absent"


def test_ping_error(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    key = "10.250.16.45->10.250.16.44"
    obs.pings[key] = {"error": "ping: connect: Network is unreachable"}
    checks = evaluate(leaf01, obs, with_pings=True)
    assert failed_subjects(checks) == [("ping", key)]
    assert only(checks, "ping", key).observed == "ping: connect: Network is unreachable"


def test_ping_total_loss(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    key = "10.250.1.11->10.250.1.13 df 9188"
    obs.pings[key] = {
        "success": {
            "probes_sent": 1,
            "packet_loss": 1,
            "rtt_min": 0.0,
            "rtt_max": 0.0,
            "rtt_avg": 0.0,
            "rtt_stddev": 0.0,
            "results": [],
        }
    }
    checks = evaluate(leaf01, obs, with_pings=True)
    assert failed_subjects(checks) == [("ping-df", key)]
    c = only(checks, "ping-df", key)
    assert c.observed == "0/1 replies"
    assert c.expected == "reply with DF set at 9216 bytes"


def test_ping_partial_loss_passes(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    key = "10.250.16.45->10.250.16.44"
    obs.pings[key] = {
        "success": {
            "probes_sent": 3,
            "packet_loss": 2,
            "rtt_min": 0.1,
            "rtt_max": 0.1,
            "rtt_avg": 0.1,
            "rtt_stddev": 0.0,
            "results": [],
        }
    }
    checks = evaluate(leaf01, obs, with_pings=True)
    assert failing(checks) == []
    assert only(checks, "ping", key).observed == "1/3 replies"


def test_ping_not_run_fails(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    del obs.pings["10.250.1.11->10.250.1.12 df 9188"]
    checks = evaluate(leaf01, obs, with_pings=True)
    assert failed_subjects(checks) == [("ping-df", "10.250.1.11->10.250.1.12 df 9188")]
    assert only(checks, "ping-df", "10.250.1.11->10.250.1.12 df 9188").observed == "not run"


def test_ping_zero_probes_sent_fails(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    obs.pings["10.250.16.45->10.250.16.44"] = {
        "success": {
            "probes_sent": 0,
            "packet_loss": 0,
            "rtt_min": 0.0,
            "rtt_max": 0.0,
            "rtt_avg": 0.0,
            "rtt_stddev": 0.0,
            "results": [],
        }
    }
    checks = evaluate(leaf01, obs, with_pings=True)
    assert failed_subjects(checks) == [("ping", "10.250.16.45->10.250.16.44")]


def test_several_failures_are_all_reported(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    obs.bgp["global"]["peers"]["10.250.16.44"]["is_up"] = False
    del obs.routes["10.250.0.14/32"]
    obs.vnis[10020]["remote_vteps"] = []
    obs.interfaces["swp1"]["mtu"] = 9000
    obs.pings["10.250.1.11->10.250.1.14 df 9188"] = {"error": "ping: local error: message too long, mtu=9000"}
    checks = evaluate(leaf01, obs, with_pings=True)
    assert failed_subjects(checks) == [
        ("bgp", "10.250.16.44 (spine-01)"),
        ("rib", "10.250.0.14/32"),
        ("vni", "10020"),
        ("interface", "swp1"),
        ("ping-df", "10.250.1.11->10.250.1.14 df 9188"),
    ]
    assert summary(checks) == {"checks": 25, "passed": 20, "failed": 5, "not_applicable": 0}


def test_evaluate_does_not_mutate_observations(leaf01: Expected) -> None:
    obs = healthy(leaf01)
    before = copy.deepcopy((obs.bgp, obs.routes, obs.vnis, obs.interfaces, obs.kernel, obs.pings))
    evaluate(leaf01, obs, with_pings=True)
    assert (obs.bgp, obs.routes, obs.vnis, obs.interfaces, obs.kernel, obs.pings) == before


# -- summary / failing ---------------------------------------------------------------------------


def _check(passed: bool | None, subject: str = "x") -> Check:
    return Check(device="leaf-01", check="bgp", subject=subject, passed=passed)


def test_summary_counts_passed_failed_and_not_applicable() -> None:
    checks = [_check(True, "a"), _check(False, "b"), _check(None, "c"), _check(False, "d"), _check(True, "e")]
    assert summary(checks) == {"checks": 5, "passed": 2, "failed": 2, "not_applicable": 1}
    assert [c.subject for c in failing(checks)] == ["b", "d"]


def test_summary_of_nothing() -> None:
    assert summary([]) == {"checks": 0, "passed": 0, "failed": 0, "not_applicable": 0}
    assert failing([]) == []


def test_failing_never_counts_not_applicable_as_failed() -> None:
    assert failing([_check(None), _check(None)]) == []


def test_check_rejects_unknown_check_names() -> None:
    with pytest.raises(ValidationError):
        Check(device="leaf-01", check="bgpp", subject="x", passed=True)  # type: ignore[arg-type]
