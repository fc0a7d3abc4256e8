"""The route audit (issue 16): a route a policy filters on an Established session, told apart from a
route in flight (``workers/deploy/filters.py``), FRR 8.4's answers as the lab's switches print them
(``workers/drivers/frr/getters.py``), and the verify loop ending on it (fake switches)."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest

from lintas.workers.checks import Check
from lintas.workers.deploy import checks as C
from lintas.workers.deploy import filters as F
from lintas.workers.deploy.fabric_verify import Settling, legs, origins, plans, verify_fabric
from lintas.workers.deploy.settle import Verdict
from lintas.workers.drivers.frr import getters
from lintas.workers.drivers.frr.reads import adj_answers, adj_commands
from lintas.workers.model import load_model_texts
from lintas.workers.model.generate import generate_fabric
from lintas.workers.model.model import InfraModel
from tests.deploy.test_settle import FakeFleet, FakeSwitch, Log, healthy
from tests.deploy.test_settle import model as model  # the fixture: the template's model

SPINE, LEAF = "10.250.16.56", "10.250.16.57"  # spine-01's and leaf-04's addresses on their link
OWN = ["10.250.0.14:2 [3]:[0]:[32]:[10.250.1.14]", "10.250.0.14:3 [3]:[0]:[32]:[10.250.1.14]"]
OTHER = "10.250.0.11:2 [3]:[0]:[32]:[10.250.1.11]"


def raw(*, state: str = "Established", sent: int = 25, recv: int = 25, outq: int = 0, inq: int = 0, **af: Any) -> Any:
    return {
        "bgpState": state,
        "connectionsEstablished": 2,
        "messageStats": {"updatesSent": sent, "updatesRecv": recv, "depthOutq": outq, "depthInq": inq},
        "addressFamilyInfo": {"l2VpnEvpn": dict(af)},
    }


LEGS = [F.Leg("leaf-04", SPINE, "spine-01", LEAF, 65000), F.Leg("spine-01", LEAF, "leaf-04", SPINE, 65114)]
ORIGINS = {"10.250.1.14": "leaf-04", "10.250.1.11": "leaf-01"}
MISS_AT_SPINE = {F.Miss("spine-01", "evpn", "10.250.1.14")}  # leaf-04's VTEP, missed by the spine


def run(
    legs: list[F.Leg], neighbors: dict[str, Any], adj: dict[str, Any], misses: set[F.Miss]
) -> tuple[list[F.Finding], dict[str, tuple[int, ...]]]:
    """The audit as verification runs it: scoped to the misses, then judged."""
    return F.audit(F.scopes(legs, neighbors, misses, ORIGINS), neighbors, adj)


def outbound_filter() -> tuple[dict[str, Any], dict[str, Any]]:
    """leaf-04 denies every EVPN route it sends (bench.breakage): it holds its own type-3 routes and
    one of leaf-01's (learned from spine-01, so with AS 65000 in its path), its adj-RIB-out is empty."""
    neighbors = {
        "leaf-04": {SPINE: raw(routeMapForOutgoingAdvertisements="RM-EVPN-DENY-OUT", outboundPathPolicyConfig=True)},
        "spine-01": {LEAF: raw(routeMapForOutgoingAdvertisements="RM-EVPN-NH-UNCHANGED")},
    }
    adj = {
        "leaf-04": {
            "evpn": {
                "local": {OWN[0]: "", OWN[1]: "", OTHER: "65000 65111"},
                "out": {SPINE: {}},
                "in": {SPINE: [OTHER]},
                "settled": {SPINE: True},
            }
        },
        "spine-01": {
            "evpn": {
                "local": {OTHER: "65111"},
                "out": {LEAF: {OTHER: "65111"}},
                "in": {LEAF: []},
                "settled": {LEAF: True},
            }
        },
    }
    return neighbors, adj


def test_an_outbound_route_map_keeps_the_routes_the_sender_holds() -> None:
    neighbors, adj = outbound_filter()
    found, evidence = run(LEGS, neighbors, adj, MISS_AT_SPINE)
    assert found == [F.Finding("leaf-04", "spine-01", "evpn", "out", "route-map RM-EVPN-DENY-OUT", tuple(OWN))]
    assert found[0].reason() == (
        "leaf-04 filters 2 EVPN route(s) it holds from spine-01 (outbound route-map RM-EVPN-DENY-OUT): "
        "e.g. [3]:[0]:[32]:[10.250.1.14]"
    )
    assert set(evidence) == {"leaf-04>spine-01 evpn"}  # only the leg the route travels to the spine


def test_an_inbound_route_map_rejects_what_the_sender_sent_but_never_a_route_looped_back() -> None:
    neighbors = {
        "leaf-04": {SPINE: raw(routeMapForIncomingAdvertisements="EVPN-IN", inboundPathPolicyConfig=True)},
        "spine-01": {LEAF: raw(routeMapForOutgoingAdvertisements="RM-EVPN-NH-UNCHANGED")},
    }
    looped = "10.250.0.14:2 [3]:[0]:[32]:[10.250.1.14]"  # leaf-04's own route, back from the spine
    adj: dict[str, Any] = {
        "leaf-04": {"evpn": {"local": {}, "out": {SPINE: {}}, "in": {SPINE: []}, "settled": {SPINE: True}}},
        "spine-01": {
            "evpn": {
                "local": {OTHER: "65111", looped: "65114"},
                "out": {LEAF: {OTHER: "65111", looped: "65114"}},
                "in": {LEAF: [looped]},
                "settled": {LEAF: True},
            }
        },
    }
    misses = {F.Miss("leaf-04", "evpn", "10.250.1.11"), F.Miss("leaf-04", "evpn", "10.250.1.14")}
    found, _ = run(LEGS, neighbors, adj, misses)
    assert found == [F.Finding("spine-01", "leaf-04", "evpn", "in", "route-map EVPN-IN", (OTHER,))]
    assert found[0].reason() == (
        "leaf-04 rejects 1 EVPN route(s) from spine-01 (inbound route-map EVPN-IN): e.g. [3]:[0]:[32]:[10.250.1.11]"
    )
    # leaf-04 holds the route from the spine: it is on its way to the VNI, not filtered
    adj["leaf-04"]["evpn"]["in"][SPINE] = [OTHER]
    assert run(LEGS, neighbors, adj, misses)[0] == []


@pytest.mark.parametrize(
    "in_flight",
    [
        {"sender": {"sent": 26}},  # an UPDATE sent that the receiver has not read yet
        {"sender": {"outq": 1}},
        {"receiver": {"inq": 1}},
        {"settled": False},  # the sender's update-subgroup still has something to send (or its coalesce timer runs)
        {"receiver": {"state": "Connect"}},
    ],
)
def test_a_route_in_flight_is_never_called_filtered(in_flight: dict[str, Any]) -> None:
    neighbors, adj = outbound_filter()
    tx = raw(routeMapForOutgoingAdvertisements="RM-EVPN-DENY-OUT", **in_flight.get("sender", {}))
    rx = raw(routeMapForOutgoingAdvertisements="RM-EVPN-NH-UNCHANGED", **in_flight.get("receiver", {}))
    neighbors["leaf-04"][SPINE], neighbors["spine-01"][LEAF] = tx, rx
    adj["leaf-04"]["evpn"]["settled"][SPINE] = in_flight.get("settled", True)
    found, _ = run(LEGS, neighbors, adj, MISS_AT_SPINE)
    assert found == []


def test_no_policy_or_nothing_missing_is_no_finding() -> None:
    neighbors, adj = outbound_filter()
    # leaf-04's own routes are missed nowhere: whatever its policy does to them is not a failure
    assert run(LEGS, neighbors, adj, {F.Miss("leaf-04", "evpn", "10.250.1.11")})[0] == []
    assert run(LEGS, neighbors, adj, set())[0] == []
    # missing, but no policy on the session: not a filter (loop prevention, a route never originated ...)
    neighbors["leaf-04"][SPINE] = raw()
    assert run(LEGS, neighbors, adj, MISS_AT_SPINE)[0] == []


def test_the_policy_names_what_frr_reports_for_the_neighbor() -> None:
    r = raw(
        routeMapForIncomingAdvertisements="RM-IN", incomingUpdatePrefixFilterList="PL-IN", inboundPathPolicyConfig=True
    )
    assert F.policy(r, "evpn", "in") == "route-map RM-IN, prefix-list PL-IN"
    assert F.policy(r, "evpn", "out") == ""
    assert F.policy(raw(outgoingUpdateAsPathFilterList="AS-OUT"), "evpn", "out") == "filter-list AS-OUT"
    assert F.policy(raw(outboundPathPolicyConfig=True), "evpn", "out") == "policy"
    assert F.policy(raw(), "ipv4", "in") == ""


def test_a_filter_is_reported_on_the_second_identical_audit_only() -> None:
    neighbors, adj = outbound_filter()
    watch = F.FilterWatch()
    first = run(LEGS, neighbors, adj, MISS_AT_SPINE)
    assert watch.feed(*first) == []
    assert watch.feed(*first) == [first[0][0].reason()]
    # an UPDATE exchanged on the session between two audits: the finding starts over
    neighbors["leaf-04"][SPINE]["messageStats"].update(updatesSent=30)
    neighbors["spine-01"][LEAF]["messageStats"].update(updatesRecv=30)
    moved = run(LEGS, neighbors, adj, MISS_AT_SPINE)
    assert moved[0] == first[0] and watch.feed(*moved) == []
    assert watch.feed(*moved) != []
    watch.reset()
    assert watch.feed(*moved) == []
    assert watch.feed([], {}) == [] and watch.feed(*moved) == []


def test_missing_things_come_from_the_failing_checks_per_switch() -> None:
    checks = [
        Check(
            device="leaf-01",
            check="vni",
            subject="10010",
            passed=False,
            expected={"remote_vteps": ["10.250.1.12", "10.250.1.14"]},
            observed={"remote_vteps": ["10.250.1.12"]},
        ),
        Check(
            device="leaf-02",
            check="vni",
            subject="10020",
            passed=False,
            expected={"remote_vteps": ["10.250.1.13"]},
            observed="VNI absent",
        ),
        Check(device="leaf-02", check="rib", subject="10.250.0.14/32", passed=False, expected="x", observed="absent"),
        Check(device="leaf-02", check="rib", subject="10.250.0.13/32", passed=True, expected="x", observed="bgp"),
    ]
    assert F.missing(checks) == {
        F.Miss("leaf-01", "evpn", "10.250.1.14"),
        F.Miss("leaf-02", "evpn", "10.250.1.13"),
        F.Miss("leaf-02", "ipv4", "10.250.0.14/32"),
    }
    assert F.missing(checks[3:]) == set()
    assert F.wanted("evpn", {"10.250.1.14"})(OWN[0]) and not F.wanted("evpn", {"10.250.1.14"})(OTHER)
    assert not F.wanted("evpn", {"10.250.1.14"})("10.250.0.14:2 [2]:[0]:[48]:[aa:bb:cc:dd:ee:ff]")
    assert F.wanted("ipv4", {"10.250.0.14/32"})("10.250.0.14/32")


def test_the_audit_reads_only_established_sessions_the_route_travels_with_a_policy_for_the_family() -> None:
    neighbors, _ = outbound_filter()
    assert F.audit_plan(F.scopes(LEGS, neighbors, MISS_AT_SPINE, ORIGINS)) == {
        "leaf-04": F.Reads((("evpn", SPINE),)),
        "spine-01": F.Reads((("evpn", LEAF),)),
    }
    ipv4 = {F.Miss("spine-01", "ipv4", "10.250.0.14/32")}
    assert F.scopes(LEGS, neighbors, ipv4, {}) == []  # no IPv4 policy here
    neighbors["leaf-04"][SPINE]["addressFamilyInfo"]["ipv4Unicast"] = {"routeMapForOutgoingAdvertisements": "RM-U"}
    assert F.audit_plan(F.scopes(LEGS, neighbors, ipv4, {})) == {
        "leaf-04": F.Reads((("ipv4", SPINE),), ("10.250.0.14/32",)),
        "spine-01": F.Reads((("ipv4", LEAF),), ("10.250.0.14/32",)),
    }
    neighbors["spine-01"][LEAF]["bgpState"] = "Active"
    assert F.scopes(LEGS, neighbors, MISS_AT_SPINE, ORIGINS) == []


# -- FRR 8.4's answers, trimmed from the lab's leaf-04 ----------------------------------------------

ADVERTISED_EVPN = {
    "bgpTableVersion": 0,
    "localAS": 65114,
    "bgpStatusCodes": {"valid": "*"},
    "advertisedRoutes": {
        "10.250.0.11:2": {
            "rd": "10.250.0.11:2",
            "[3]:[0]:[32]:[10.250.1.11]": {"routeType": 3, "ip": "10.250.1.11", "path": "65000 65111"},
        }
    },
}
ROUTES_EVPN = {
    "bgpTableVersion": 1,
    "localAS": 65114,
    "10.250.0.11:2": {
        "rd": "10.250.0.11:2",
        "[3]:[0]:[32]:[10.250.1.11]": {"prefix": "[3]:[0]:[32]:[10.250.1.11]", "paths": [{"peerId": SPINE}]},
    },
}
MULTICAST = {  # `show bgp l2vpn evpn route type multicast json`: paths are lists of paths
    "10.250.0.11:2": {
        "rd": "10.250.0.11:2",
        "[3]:[0]:[32]:[10.250.1.11]": {
            "paths": [
                [{"valid": True, "path": "65000 65111"}],
                [{"valid": True, "bestpath": True, "path": "65000 65111"}],
            ]
        },
    },
    "10.250.0.14:2": {
        "rd": "10.250.0.14:2",
        "[3]:[0]:[32]:[10.250.1.14]": {"paths": [[{"valid": True, "bestpath": True, "path": ""}]]},
    },
}
IPV4 = {
    "tableVersion": 16,
    "routes": {
        "10.250.0.1/32": [{"valid": True, "bestpath": True, "path": "65000", "peerId": SPINE}],
        "10.250.0.11/32": [{"valid": True, "multipath": True, "path": "65000 65111"}],
    },
}
ADVERTISED_IPV4 = {"advertisedRoutes": {"10.250.0.1/32": {"network": "10.250.0.1/32", "path": "65000"}}}
UPDATE_GROUPS = """
Update-group 5:
  Created: Sun Dec  6 09:08:36 2026
  Outgoing route map: RM-UNDERLAY-OUT
  MRAI value (seconds): 0

  Update-subgroup 5:
    Created: Sun Dec  6 09:08:36 2026
    Coalesce Time: 1150
    Version: 16
    Packet queue length: 0
    Adj-out list count: 10
    Advertise list: empty
    Flags:
    Max packet size: 65535
    Peers:
      - 10.250.16.56
      - 10.250.16.58

  Update-subgroup 6:
    Created: Sun Dec  6 09:09:01 2026
    Coalesce Time: 1150(Running)
    Version: 0
    Packet queue length: 0
    Advertise list: empty
    Peers:
      - 10.250.16.60
"""


def test_frr_answers_parse_to_route_keys_and_paths() -> None:
    assert getters.advertised_routes("evpn", ADVERTISED_EVPN) == {OTHER: "65000 65111"}
    assert getters.neighbor_routes("evpn", ROUTES_EVPN) == [OTHER]
    assert getters.best_routes("evpn", MULTICAST) == {OTHER: "65000 65111", OWN[0]: ""}
    assert getters.best_routes("ipv4", IPV4) == {"10.250.0.1/32": "65000"}  # a multipath is not the best
    assert getters.advertised_routes("ipv4", ADVERTISED_IPV4) == {"10.250.0.1/32": "65000"}
    assert getters.neighbor_routes("ipv4", IPV4) == ["10.250.0.1/32", "10.250.0.11/32"]
    assert getters.advertised_routes("evpn", {}) == {} and getters.neighbor_routes("ipv4", {"routes": []}) == []
    not_empty = UPDATE_GROUPS.replace("Advertise list: empty\n    Flags", "Advertise list: not empty\n    Flags")
    assert getters.update_groups(UPDATE_GROUPS) == {"10.250.16.56": True, "10.250.16.58": True, "10.250.16.60": False}
    assert getters.update_groups(not_empty)["10.250.16.56"] is False


PREFIX_IPV4 = {  # `show bgp ipv4 unicast 10.250.0.11/32 json` on spine-01 (trimmed)
    "prefix": "10.250.0.11/32",
    "advertisedTo": {"10.250.16.57": {"hostname": "leaf-04"}, "10.250.16.59": {"hostname": "leaf-03"}},
    "paths": [
        {
            "aspath": {"string": "65111", "segments": [], "length": 1},
            "valid": True,
            "bestpath": {"overall": True, "selectionReason": "First path received"},
            "peer": {"peerId": "10.250.16.49", "routerId": "10.250.0.11", "type": "external"},
        },
        {"aspath": {"string": "65114 65000 65111"}, "valid": False, "peer": {"peerId": "10.250.16.57"}},
    ],
}


def test_the_audit_commands_are_one_vtysh_batch_and_refuse_anything_but_an_address() -> None:
    audit = adj_commands([("evpn", SPINE), ("ipv4", SPINE), ("evpn", "10.250.16.58")], ["10.250.0.14/32"])
    assert [c for _, c in audit] == [
        "show bgp l2vpn evpn route type multicast json",
        f"show bgp l2vpn evpn neighbors {SPINE} advertised-routes json",
        f"show bgp l2vpn evpn neighbors {SPINE} routes json",
        "show bgp l2vpn evpn neighbors 10.250.16.58 advertised-routes json",
        "show bgp l2vpn evpn neighbors 10.250.16.58 routes json",
        "show bgp ipv4 unicast 10.250.0.14/32 json",  # the missing prefix only, never the whole table
    ]
    got = adj_answers(audit[:3], [MULTICAST, ADVERTISED_EVPN, ROUTES_EVPN])
    assert got == {
        "evpn": {
            "local": {OTHER: "65000 65111", OWN[0]: ""},
            "out": {SPINE: {OTHER: "65000 65111"}},
            "in": {SPINE: [OTHER]},
        }
    }
    for bad in ("10.250.16.56; reboot", "spine-01", ""):
        with pytest.raises(ValueError):
            adj_commands([("evpn", bad)])
    with pytest.raises(ValueError):
        adj_commands([("ipv6", SPINE)])
    with pytest.raises(ValueError):
        adj_commands([("ipv4", SPINE)])  # IPv4 is read per prefix
    for bad in ("10.250.0.14/32; reboot", "10.250.0.14", "10.250.0.15/24"):
        with pytest.raises(ValueError):
            adj_commands([("ipv4", SPINE)], [bad])


def test_an_ipv4_prefix_answer_gives_the_best_path_the_adj_rib_out_and_who_sent_it() -> None:
    assert getters.prefix_entry(PREFIX_IPV4) == ("65111", ["10.250.16.57", "10.250.16.59"], ["10.250.16.49"])
    assert getters.prefix_entry({}) == (None, [], [])  # FRR's answer for a prefix it does not have
    audit = adj_commands([("ipv4", "10.250.16.57"), ("ipv4", "10.250.16.61")], ["10.250.0.11/32"])
    got = adj_answers(audit, [PREFIX_IPV4], ["10.250.16.57", "10.250.16.61"])
    assert got == {
        "ipv4": {
            "local": {"10.250.0.11/32": "65111"},
            "out": {
                "10.250.16.57": {"10.250.0.11/32": "65111"},
                "10.250.16.61": {},
                "10.250.16.59": {"10.250.0.11/32": "65111"},
            },
            "in": {"10.250.16.57": [], "10.250.16.61": [], "10.250.16.49": ["10.250.0.11/32"]},
        }
    }


# -- the verify loop on fake switches that answer the audit ----------------------------------------


class AuditSwitch(FakeSwitch):
    """A fake switch that also reports its neighbors as FRR does and answers the audit's reads."""

    def __init__(self, obs: C.Observed, neighbors: dict[str, Any], adj: dict[str, Any]) -> None:
        super().__init__([obs])
        self.neighbors, self.adj, self.audits, self.slow = neighbors, adj, 0, 0.0

    def get_fabric_state(
        self,
        evpn: bool = True,
        pending: bool = False,
        session_keys: str | None = None,
        adj: list[tuple[str, str]] | None = None,
        prefixes: list[str] | None = None,
    ) -> dict[str, Any]:
        st = super().get_fabric_state(evpn=evpn, pending=pending, session_keys=session_keys)
        st["bgp_neighbors_raw"] = {"default": self.neighbors}
        if adj:
            time.sleep(self.slow)
            self.audits += 1
            st["adj"] = {f: copy.deepcopy(self.adj.get(f, {})) for f, _ in adj}
        return st


def _audit_fleet(model: InfraModel, rm_in: str | None) -> FakeFleet:
    """Every session Established and delivered. Without ``rm_in``: leaf-04 keeps its type-3 route
    (outbound route-map), so every other leaf misses its VTEP. With ``rm_in``: the spines send
    leaf-04 every other leaf's type-3 route and leaf-04 rejects them (inbound route-map), so leaf-04
    misses every other VTEP."""
    plan = plans(model, sorted(model.devices))
    leaf4 = model.devices["leaf-04"]
    own4 = {f"{leaf4.loopback}:2 [3]:[0]:[32]:[{leaf4.vtep}]": ""}
    others = {
        f"{d.loopback}:2 [3]:[0]:[32]:[{d.vtep}]": str(d.asn)
        for d in model.devices.values()
        if d.vtep is not None and d.name != "leaf-04"
    }
    out: dict[str, FakeSwitch] = {}
    for name in sorted(model.devices):
        obs = healthy(C.expected_state(model, name))
        for v in obs.vnis.values():
            if rm_in is None:
                v["remote_vteps"] = [x for x in v["remote_vteps"] if x != str(leaf4.vtep)]
            elif name == "leaf-04":
                v["remote_vteps"] = []
        spine = not model.devices[name].is_leaf
        neighbors: dict[str, Any] = {}
        adj: dict[str, Any] = {"local": {}, "out": {}, "in": {}, "settled": {}}
        for ip, peer in plan[name].expected.peers.items():
            if spine:
                neighbors[ip] = raw(routeMapForOutgoingAdvertisements="RM-EVPN-NH-UNCHANGED")
                adj["out"][ip] = dict(others)
                adj["in"][ip] = (
                    []
                    if peer == "leaf-04"
                    else sorted(k for k in others if k.endswith(f"[{model.devices[peer].vtep}]"))
                )
            elif name == "leaf-04":
                policy: dict[str, Any] = (
                    {"routeMapForIncomingAdvertisements": rm_in}
                    if rm_in
                    else {"routeMapForOutgoingAdvertisements": "RM-EVPN-DENY-OUT"}
                )
                neighbors[ip] = raw(**policy)
                adj["out"][ip] = dict(own4) if rm_in else {}
                adj["in"][ip] = [] if rm_in else sorted(others)
            else:
                neighbors[ip] = raw()
                adj["out"][ip] = {k: "" for k in others if k.endswith(f"[{model.devices[name].vtep}]")}
                adj["in"][ip] = sorted(others)
            adj["settled"][ip] = True
        adj["local"] = dict(others) if spine else dict(own4) if name == "leaf-04" else {}
        out[name] = AuditSwitch(obs, neighbors, {"evpn": adj})
    return FakeFleet(out)


@pytest.mark.parametrize("rm_in", [None, "EVPN-IN"])
def test_verify_ends_deterministic_on_the_filter_two_reads_after_it_saw_the_route_missing(
    model: InfraModel, rm_in: str | None
) -> None:
    fleet = _audit_fleet(model, rm_in)
    settling = Settling("verify", timeout_s=20.0, settle_s=10.0, poll_s=0.01)
    v = asyncio.run(
        verify_fabric(fleet, model, sorted(model.devices), log=Log(), settling=settling, changed={"leaf-04"})  # type: ignore[arg-type]
    )
    assert not v.verdict.passed and v.verdict.ended_by == "deterministic", v.verdict
    assert v.reads == 3  # the read that saw the route missing, then two audits that agree
    if rm_in is None:
        assert "leaf-04 filters 1 EVPN route(s) it holds from spine-01 (outbound route-map RM-EVPN-DENY-OUT)" in (
            v.verdict.reason
        )
    else:
        assert "leaf-04 rejects 3 EVPN route(s) from spine-01 (inbound route-map EVPN-IN)" in v.verdict.reason
        assert "leaf-04 rejects 3 EVPN route(s) from spine-02 (inbound route-map EVPN-IN)" in v.verdict.reason
    audited = {n for n, s in fleet.switches.items() if isinstance(s, AuditSwitch) and s.audits}
    # every other leaf misses leaf-04's VTEP (or leaf-04 misses every other): every switch is on a path
    assert audited == set(model.devices)
    assert (
        len(legs(plans(model, sorted(model.devices)))) == 2 * sum(len(v) for v in model.links_by_device.values()) // 2
    )


# -- scope: only the sessions a missing route travels to the switch that misses it ------------------

X = "10.250.0.11/32"  # leaf-01's loopback
SW_AS = {"spine-01": 65001, "spine-02": 65002, "leaf-01": 65111, "leaf-02": 65112, "leaf-04": 65114}  # per-spine ASNs


def clos() -> tuple[list[F.Leg], dict[str, Any], dict[str, Any], dict[tuple[str, str], F.Leg]]:
    """Two spines (an ASN each) and three leaves, every session Established, delivered and with an
    outbound route-map (as the template's RM-UNDERLAY-OUT); leaf-01's loopback known everywhere
    (each spine from leaf-01, each leaf from both spines) unless a test takes it away."""
    legs: list[F.Leg] = []
    neighbors: dict[str, Any] = {}
    adj: dict[str, Any] = {}
    by: dict[tuple[str, str], F.Leg] = {}
    n = 0
    for s in ("spine-01", "spine-02"):
        for leaf in ("leaf-01", "leaf-02", "leaf-04"):
            s_ip, l_ip = f"10.250.16.{n}", f"10.250.16.{n + 1}"
            n += 2
            for g in (F.Leg(s, l_ip, leaf, s_ip, SW_AS[leaf]), F.Leg(leaf, s_ip, s, l_ip, SW_AS[s])):
                legs.append(g)
                by[g.sender, g.receiver] = g
                neighbors.setdefault(g.sender, {})[g.receiver_ip] = {
                    **raw(),
                    "addressFamilyInfo": {"ipv4Unicast": {"routeMapForOutgoingAdvertisements": "RM-UNDERLAY-OUT"}},
                }
    for name in SW_AS:
        adj[name] = {"ipv4": {"local": {}, "out": {}, "in": {}, "settled": {}}}
    for g in legs:
        s_adj, r_adj = adj[g.sender]["ipv4"], adj[g.receiver]["ipv4"]
        s_adj["settled"][g.receiver_ip] = True
        s_adj["out"].setdefault(g.receiver_ip, {})
        r_adj["in"].setdefault(g.sender_ip, [])
    path = {"leaf-01": "", "spine-01": "65111", "spine-02": "65111"}
    for name in SW_AS:
        adj[name]["ipv4"]["local"][X] = path.get(name, "65001 65111")
    for g in legs:  # everyone sends X on (spines to every leaf, leaf-01 to the spines; no transit through leaves)
        if g.sender != "leaf-01" and g.sender.startswith("leaf"):
            continue
        adj[g.sender]["ipv4"]["out"][g.receiver_ip][X] = path[g.sender]
        if not _has_path_as(path[g.sender], SW_AS[g.receiver]):
            adj[g.receiver]["ipv4"]["in"][g.sender_ip].append(X)
    return legs, neighbors, adj, by


def _has_path_as(path: str, asn: int) -> bool:
    return str(asn) in path.split()


def _judge(legs: list[F.Leg], neighbors: dict[str, Any], adj: dict[str, Any], misses: set[F.Miss]) -> list[F.Finding]:
    scoped = F.scopes(legs, neighbors, misses, {X: "leaf-01"})
    return F.audit(scoped, neighbors, adj)[0]


def test_a_policy_on_a_session_whose_receiver_misses_nothing_is_never_read_nor_a_finding() -> None:
    legs, neighbors, adj, by = clos()
    # leaf-02 holds X (from spine-02: no spine-01 AS in its path) and its no-transit outbound policy
    # keeps it from spine-01, which misses nothing: legitimate
    assert X not in adj["leaf-02"]["ipv4"]["out"][by["leaf-02", "spine-01"].receiver_ip]
    adj["leaf-02"]["ipv4"]["local"][X] = "65002 65111"
    # leaf-04 misses X: both spines sent it, leaf-04 has not read the last UPDATE of spine-02 yet
    g = by["spine-02", "leaf-04"]
    neighbors["spine-02"][g.receiver_ip]["messageStats"]["updatesSent"] = 26
    adj["leaf-04"]["ipv4"]["in"][g.sender_ip] = []
    misses = {F.Miss("leaf-04", "ipv4", X)}
    plan = F.audit_plan(F.scopes(legs, neighbors, misses, {X: "leaf-01"}))
    assert sorted(plan) == ["leaf-01", "leaf-04", "spine-01", "spine-02"]  # never leaf-02
    assert all(r.prefixes == (X,) for r in plan.values())
    assert _judge(legs, neighbors, adj, misses) == []
    # even every switch read in full, with leaf-04's route from spine-02 lost for good, the policy
    # of leaf-02 towards spine-01 is never what is reported
    neighbors["spine-02"][g.receiver_ip]["messageStats"]["updatesSent"] = 25
    neighbors["leaf-04"][g.sender_ip]["addressFamilyInfo"]["ipv4Unicast"]["routeMapForIncomingAdvertisements"] = "IN"
    adj["leaf-04"]["ipv4"]["in"][by["spine-01", "leaf-04"].sender_ip] = []
    neighbors["leaf-04"][by["spine-01", "leaf-04"].sender_ip]["addressFamilyInfo"]["ipv4Unicast"][
        "routeMapForIncomingAdvertisements"
    ] = "IN"
    found = _judge(legs, neighbors, adj, misses)
    assert {(f.sender, f.receiver, f.direction) for f in found} == {
        ("spine-01", "leaf-04", "in"),
        ("spine-02", "leaf-04", "in"),
    }
    # the same policy of leaf-02, with only switches missing X that it is not on the way to: nothing
    assert _judge(legs, neighbors, adj, {F.Miss("spine-01", "ipv4", "10.250.0.12/32")}) == []


def test_no_transit_a_route_kept_by_one_spine_and_in_flight_from_the_other_is_no_finding() -> None:
    legs, neighbors, adj, by = clos()
    one, two = by["spine-01", "leaf-04"], by["spine-02", "leaf-04"]
    # spine-01's outbound policy keeps X from leaf-04 (a no-transit map, legitimate)
    del adj["spine-01"]["ipv4"]["out"][one.receiver_ip][X]
    adj["leaf-04"]["ipv4"]["in"][one.sender_ip] = []
    # spine-02 sent it, leaf-04 has not read it yet: in flight
    adj["leaf-04"]["ipv4"]["in"][two.sender_ip] = []
    neighbors["spine-02"][two.receiver_ip]["messageStats"]["updatesSent"] = 26
    misses = {F.Miss("leaf-04", "ipv4", X)}
    assert _judge(legs, neighbors, adj, misses) == []
    # spine-02's update-subgroup still has it to send (counts equal): in flight as well
    neighbors["spine-02"][two.receiver_ip]["messageStats"]["updatesSent"] = 25
    del adj["spine-02"]["ipv4"]["out"][two.receiver_ip][X]
    adj["spine-02"]["ipv4"]["settled"][two.receiver_ip] = False
    assert _judge(legs, neighbors, adj, misses) == []
    # read and held from spine-02 (the RIB check saw it missing a moment before): no finding
    adj["spine-02"]["ipv4"]["settled"][two.receiver_ip] = True
    adj["spine-02"]["ipv4"]["out"][two.receiver_ip][X] = "65111"
    adj["leaf-04"]["ipv4"]["in"][two.sender_ip] = [X]
    assert _judge(legs, neighbors, adj, misses) == []
    # only once spine-02 keeps it as well (delivered, nothing waiting) is it filtered, on both legs
    del adj["spine-02"]["ipv4"]["out"][two.receiver_ip][X]
    adj["leaf-04"]["ipv4"]["in"][two.sender_ip] = []
    found = _judge(legs, neighbors, adj, misses)
    assert [(f.sender, f.receiver, f.direction, f.routes) for f in found] == [
        ("spine-01", "leaf-04", "out", (X,)),
        ("spine-02", "leaf-04", "out", (X,)),
    ]


def test_a_route_kept_upstream_is_found_through_the_spines_that_lack_it() -> None:
    legs, neighbors, adj, by = clos()
    # leaf-01 keeps its loopback from both spines: they lack it, leaf-04 and leaf-02 miss it
    for s in ("spine-01", "spine-02"):
        g = by["leaf-01", s]
        del adj["leaf-01"]["ipv4"]["out"][g.receiver_ip][X]
        adj[s]["ipv4"]["in"][g.sender_ip] = []
        del adj[s]["ipv4"]["local"][X]
        for leaf in ("leaf-02", "leaf-04"):
            h = by[s, leaf]
            del adj[s]["ipv4"]["out"][h.receiver_ip][X]
            adj[leaf]["ipv4"]["in"][h.sender_ip] = []
    for leaf in ("leaf-02", "leaf-04"):
        del adj[leaf]["ipv4"]["local"][X]
    found = _judge(legs, neighbors, adj, {F.Miss("leaf-04", "ipv4", X)})
    assert [(f.sender, f.receiver, f.direction) for f in found] == [
        ("leaf-01", "spine-01", "out"),
        ("leaf-01", "spine-02", "out"),
    ]
    # one spine's session from leaf-01 still delivering: not yet
    g = by["leaf-01", "spine-02"]
    neighbors["spine-02"][g.sender_ip]["messageStats"]["depthInq"] = 1
    assert _judge(legs, neighbors, adj, {F.Miss("leaf-04", "ipv4", X)}) == []


def test_one_missing_route_on_a_generated_2x32_fabric_reads_a_handful_of_sessions() -> None:
    model = load_model_texts(generate_fabric(32, n_spines=2, vnis_per_leaf=2))
    plan = plans(model, sorted(model.devices))
    lgs = legs(plan)
    assert len(lgs) == 2 * 2 * 32
    neighbors: dict[str, Any] = {}
    for g in lgs:  # every session Established, with the template's route-maps on both families
        neighbors.setdefault(g.sender, {})[g.receiver_ip] = {
            **raw(),
            "addressFamilyInfo": {
                "l2VpnEvpn": {"routeMapForOutgoingAdvertisements": "RM-EVPN-NH-UNCHANGED"},
                "ipv4Unicast": {"routeMapForOutgoingAdvertisements": "RM-UNDERLAY-OUT"},
            },
        }
    leaf1 = model.devices["leaf-01"]
    for miss in (F.Miss("leaf-05", "evpn", str(leaf1.vtep)), F.Miss("leaf-05", "ipv4", f"{leaf1.loopback}/32")):
        reads = F.audit_plan(F.scopes(lgs, neighbors, {miss}, origins(model)))
        # spine->leaf-05 and leaf-01->spine, both ends of each: 4 switches, 2 neighbors each
        assert sorted(reads) == ["leaf-01", "leaf-05", "spine-01", "spine-02"]
        assert sum(len(r.pairs) for r in reads.values()) == 8
        spine = reads["spine-01"]
        assert {ip for _, ip in spine.pairs} == {
            next(g.receiver_ip for g in lgs if g.sender == "spine-01" and g.receiver == d)
            for d in ("leaf-01", "leaf-05")
        }
        commands = adj_commands(list(spine.pairs), list(spine.prefixes))
        if miss.family == "ipv4":
            assert [c for _, c in commands] == [f"show bgp ipv4 unicast {leaf1.loopback}/32 json"]
        else:  # the type-3 table, and the two neighbors' tables
            assert len(commands) == 5


def test_a_settled_verdict_waits_for_the_read_that_confirms_a_pending_finding(model: InfraModel) -> None:
    """An audit read slower than the settle window (a loaded machine): "settled" would end verify
    on the read of the first finding; verify reads once more and ends on the filter's reason."""
    fleet = _audit_fleet(model, None)
    cast = fleet.switches["leaf-04"]
    assert isinstance(cast, AuditSwitch)
    cast.slow = 0.5
    settling = Settling("verify", timeout_s=20.0, settle_s=0.3, poll_s=0.01)
    v = asyncio.run(
        verify_fabric(fleet, model, sorted(model.devices), log=Log(), settling=settling, changed={"leaf-04"})  # type: ignore[arg-type]
    )
    assert v.verdict.ended_by == "deterministic" and v.reads == 3, (v.verdict, v.reads)
    assert "outbound route-map RM-EVPN-DENY-OUT" in v.verdict.reason
    # the hold: only a settled verdict, only with a finding pending, twice at most
    watch = F.FilterWatch()
    settled = Verdict(False, "settled", "x", 3.0)
    assert watch.hold(settled) is settled and watch.hold(None) is None
    neighbors, adj = outbound_filter()
    watch.feed(*run(LEGS, neighbors, adj, MISS_AT_SPINE))
    assert watch.hold(settled) is None and watch.hold(settled) is None and watch.hold(settled) is settled
    timeout = Verdict(False, "timeout", "x", 3.0)
    assert F.FilterWatch().hold(timeout) is timeout
