"""The stability rule of verify (workers.deploy.settle) on sequences of readings with their own
clock, and the verify loop (workers.deploy.fabric_verify) on fake switches: what ends it, which
pairs are probed, what is deterministic."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

from lintas.workers.deploy import checks as C
from lintas.workers.deploy.fabric_verify import (
    Settling,
    affected_pings,
    deterministic,
    digest,
    plans,
    read_device,
    verify_fabric,
)
from lintas.workers.deploy.fleet import Outcome
from lintas.workers.deploy.settle import Reading, Stability
from lintas.workers.model import load_model
from lintas.workers.model.model import InfraModel

TEMPLATE = Path(__file__).resolve().parents[2] / "gitops-repo-template"


def rule(timeout: float = 90.0, quiet: float = 1.0, settle: float = 3.0) -> Stability:
    return Stability(started=0.0, timeout_s=timeout, quiet_s=quiet, settle_s=settle)


def feed(r: Stability, seq: list[Reading]) -> list[Any]:
    return [r.feed(x) for x in seq]


# -- the rule, on readings ---------------------------------------------------------------------


def test_passing_and_unchanged_for_the_quiet_window_is_stable() -> None:
    r = rule()
    out = feed(r, [Reading(0.3, {"a": "1"}), Reading(0.8, {"a": "1"}), Reading(1.4, {"a": "1"})])
    assert out[:2] == [None, None]
    assert out[2] is not None and out[2].passed and out[2].ended_by == "stable"
    assert out[2].quiet_s == pytest.approx(1.1)


def test_a_change_restarts_the_quiet_window() -> None:
    r = rule()
    out = feed(
        r, [Reading(0.3, {"a": "1"}), Reading(1.0, {"a": "2"}), Reading(1.9, {"a": "2"}), Reading(2.1, {"a": "2"})]
    )
    assert out[:3] == [None, None, None]
    assert out[3] is not None and out[3].ended_by == "stable"
    assert r.changed == ["a"]


def test_passing_on_the_first_read_alone_is_not_yet_converged() -> None:
    assert rule(quiet=1.0).feed(Reading(0.3, {"a": "1"})) is None


def test_failing_with_sessions_up_and_nothing_changing_settles_as_failed() -> None:
    r = rule(settle=3.0)
    seq = [Reading(t, {"a": "x", "b": "y"}, failing=4) for t in (0.5, 1.0, 2.0, 3.0, 3.6)]
    out = feed(r, seq)
    assert out[:4] == [None] * 4
    v = out[4]
    assert v is not None and not v.passed and v.ended_by == "settled"
    assert "4 check(s) failing" in v.reason and "3.1 s" in v.reason


def test_a_session_down_never_settles_it_waits_for_the_timeout() -> None:
    r = rule(timeout=10.0, settle=1.0)
    seq = [Reading(float(t), {"a": "x"}, failing=1, sessions_down=1) for t in range(1, 11)]
    out = feed(r, seq)
    assert out[:-1] == [None] * 9
    v = out[-1]
    assert v is not None and not v.passed and v.ended_by == "timeout" and "1 session(s) not Established" in v.reason


def test_state_that_keeps_changing_ends_at_the_timeout() -> None:
    r = rule(timeout=5.0)
    out = feed(r, [Reading(float(t), {"a": str(t)}, failing=2) for t in range(1, 6)])
    assert out[-1] is not None and out[-1].ended_by == "timeout" and "still changing" in out[-1].reason


def test_a_deterministic_failure_ends_at_once_with_its_reason() -> None:
    v = rule().feed(
        Reading(0.2, {"a": "1"}, failing=1, deterministic=["leaf-01 swp1: up at MTU 1500, the model says 9216"])
    )
    assert v is not None and not v.passed and v.ended_by == "deterministic" and "MTU 1500" in v.reason


def test_settling_needs_the_longer_window_passing_the_shorter() -> None:
    r = rule(quiet=1.0, settle=3.0)
    assert feed(r, [Reading(0.0, {"a": "1"}, failing=1), Reading(1.5, {"a": "1"}, failing=1)]) == [None, None]


# -- digests and deterministic failures ---------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> InfraModel:
    return load_model(TEMPLATE)


def healthy(exp: C.Expected) -> C.Observed:
    bgp = {
        "global": {
            "router_id": "r",
            "peers": {
                ip: {
                    "is_up": True,
                    "local_as": 0,
                    "remote_as": 0,
                    "uptime": 10,
                    "address_family": {
                        "ipv4": {"received_prefixes": 7, "sent_prefixes": 3},
                        "l2vpn_evpn": {"received_prefixes": 12, "sent_prefixes": 4},
                    },
                }
                for ip in exp.peers
            },
        }
    }
    routes = {
        f"{p}/32": {"protocol": "bgp", "selected": True, "installed": True, "nexthops": ["x"]} for p in exp.prefixes
    }
    vnis: dict[int, dict[str, Any]] = {
        v: {"type": "L2", "state": "Up", "remote_vteps": list(r)} for v, r in exp.vnis.items()
    }
    vnis.update({v: {"type": "L3", "remote_vteps": []} for v in exp.l3vnis})
    ports = {p: {"is_up": True, "mtu": m} for p, m in exp.interfaces.items()}
    return C.Observed(bgp=bgp, routes=routes, vnis=vnis, interfaces=ports, kernel={"capabilities": {"vrf": True}})


def test_digest_ignores_uptimes_but_sees_prefix_counts_and_table_versions(model: InfraModel) -> None:
    exp = C.expected_state(model, "leaf-01")
    a, b = healthy(exp), healthy(exp)
    ip = next(iter(exp.peers))
    b.bgp["global"]["peers"][ip]["uptime"] = 999
    assert digest(a, {}) == digest(b, {})
    b.bgp["global"]["peers"][ip]["address_family"]["l2vpn_evpn"]["received_prefixes"] = 11
    assert digest(a, {}) != digest(b, {})
    v1 = {"default": {"ipv4Unicast": {"tableVersion": 9}}}
    v2 = {"default": {"ipv4Unicast": {"tableVersion": 10}}}
    assert digest(a, v1) != digest(a, v2)


def test_wrong_mtu_on_an_up_port_and_a_wrong_asn_are_deterministic(model: InfraModel) -> None:
    p = plans(model, ["leaf-01"])["leaf-01"]
    obs = healthy(p.expected)
    assert deterministic(p, obs) == []
    port = next(iter(p.expected.interfaces))
    obs.interfaces[port]["mtu"] = 1500
    ip = next(iter(p.expected.peers))
    obs.bgp["global"]["peers"][ip].update(is_up=False, remote_as=64999)
    reasons = deterministic(p, obs)
    assert any(f"{port}: up at MTU 1500" in r for r in reasons)
    assert any("remote AS 64999" in r and str(p.peer_asns[ip]) in r for r in reasons)


def test_a_port_down_or_a_session_down_with_the_right_asn_is_not_deterministic(model: InfraModel) -> None:
    p = plans(model, ["leaf-01"])["leaf-01"]
    obs = healthy(p.expected)
    port = next(iter(p.expected.interfaces))
    obs.interfaces[port].update(is_up=False, mtu=1500)
    ip = next(iter(p.expected.peers))
    obs.bgp["global"]["peers"][ip].update(is_up=False, remote_as=p.peer_asns[ip], local_as=p.asn)
    assert deterministic(p, obs) == []


# -- which pairs are probed ----------------------------------------------------------------------


def test_a_leaf_change_probes_only_pairs_touching_that_leaf(model: InfraModel) -> None:
    exp2 = C.expected_state(model, "leaf-02")
    got = affected_pings(model, "leaf-02", exp2.pings, {"leaf-01"})
    vtep1 = str(model.devices["leaf-01"].vtep)
    assert [p.destination for p in got] == [vtep1] and got[0].df
    exp1 = C.expected_state(model, "leaf-01")
    assert affected_pings(model, "leaf-01", exp1.pings, {"leaf-01"}) == exp1.pings
    spine = C.expected_state(model, "spine-01")
    mine = affected_pings(model, "spine-01", spine.pings, {"leaf-01"})
    assert len(mine) == 1 and spine.peers[mine[0].destination] == "leaf-01"


def test_a_spine_change_or_no_record_probes_every_pair(model: InfraModel) -> None:
    exp = C.expected_state(model, "leaf-02")
    assert affected_pings(model, "leaf-02", exp.pings, {"spine-01"}) == exp.pings
    assert affected_pings(model, "leaf-02", exp.pings, None) == exp.pings
    assert affected_pings(model, "leaf-02", exp.pings, set()) == []


# -- the loop on fake switches ---------------------------------------------------------------------


class FakeSwitch:
    """Answers get_fabric_state from a script of observations (the last one repeats)."""

    def __init__(self, states: list[C.Observed]) -> None:
        self.states, self.reads, self.probes = states, 0, 0

    def get_fabric_state(self, evpn: bool = True, pending: bool = False) -> dict[str, Any]:
        obs = self.states[min(self.reads, len(self.states) - 1)]
        self.reads += 1
        return {
            "bgp": obs.bgp,
            "routes": obs.routes,
            "vnis": obs.vnis,
            "interfaces": obs.interfaces,
            "kernel": obs.kernel,
            "bgp_summary": {},
            **({"pending": None} if pending else {}),
        }

    def ping_many(self, probes: list[dict[str, Any]], timeout: int = 1) -> list[dict[str, Any]]:
        self.probes += len(probes)
        return [{"success": {"probes_sent": 1, "packet_loss": 0}} for _ in probes]


class FakeConn:
    hostname = "fake"


class FakeFleet:
    def __init__(self, switches: dict[str, FakeSwitch]) -> None:
        self.switches = switches
        self.conns = {n: FakeConn() for n in switches}

    async def run(self, names: Any, fn: Any, **kw: Any) -> dict[str, Outcome[Any]]:
        return {n: Outcome(fn(self.switches[n], n, **kw), None) for n in names}


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def info(self, text: str) -> None:
        self.lines.append(text)


def _fleet(model: InfraModel, broken: dict[str, Any] | None = None) -> FakeFleet:
    out = {}
    for name in sorted(model.devices):
        obs = healthy(C.expected_state(model, name))
        if broken and name in broken:
            obs = broken[name](copy.deepcopy(obs))
        out[name] = FakeSwitch([obs])
    return FakeFleet(out)


def _run(model: InfraModel, fleet: FakeFleet, changed: set[str] | None = None, **windows: Any) -> Any:
    settling = Settling("verify", **{"timeout_s": 20.0, **windows})
    return asyncio.run(
        verify_fabric(fleet, model, sorted(model.devices), log=Log(), settling=settling, changed=changed)  # type: ignore[arg-type]
    )


def test_a_healthy_fabric_is_stable_after_the_quiet_window_with_the_affected_probes(model: InfraModel) -> None:
    fleet = _fleet(model)
    v = _run(model, fleet, changed={"leaf-01"}, quiet_s=0.2, poll_s=0.05)
    assert v.verdict.passed and v.verdict.ended_by == "stable"
    assert not C.failing(v.checks)
    assert {c.check for c in v.checks} >= {"bgp", "rib", "vni", "interface", "ping", "ping-df"}
    assert fleet.switches["leaf-01"].probes == len(C.expected_state(model, "leaf-01").pings)
    # leaf-02 probes only leaf-01's VTEP; every switch was read more than once (the quiet window)
    assert fleet.switches["leaf-02"].probes == 1
    assert all(s.reads >= 2 for s in fleet.switches.values())
    # the last read also told each switch's pending commit (none here): verify confirms from it
    assert set(v.pending) == set(model.devices) and all(a.get_pending_commit() is None for a in v.pending.values())


def test_a_filtered_vtep_settles_as_failed_long_before_the_timeout(model: InfraModel) -> None:
    vtep4 = str(model.devices["leaf-04"].vtep)

    def lose_leaf04(obs: C.Observed) -> C.Observed:
        for v in obs.vnis.values():
            v["remote_vteps"] = [x for x in v["remote_vteps"] if x != vtep4]
        return obs

    fleet = _fleet(model, {n: lose_leaf04 for n in model.devices if n != "leaf-04"})
    v = _run(model, fleet, changed={"leaf-04"}, settle_s=0.3, poll_s=0.05, timeout_s=60.0)
    assert not v.verdict.passed and v.verdict.ended_by == "settled" and v.elapsed_s < 5
    assert any(c.check == "vni" and c.passed is False for c in v.checks)


def test_a_wrong_mtu_fails_at_the_first_read(model: InfraModel) -> None:
    port = next(iter(C.expected_state(model, "leaf-03").interfaces))

    def small(obs: C.Observed) -> C.Observed:
        obs.interfaces[port]["mtu"] = 1500
        return obs

    fleet = _fleet(model, {"leaf-03": small})
    v = _run(model, fleet, settle_s=10.0)
    assert v.verdict.ended_by == "deterministic" and v.reads == 1
    assert f"leaf-03 {port}: up at MTU 1500" in v.verdict.reason


def test_read_device_reads_once_and_counts_sessions_down(model: InfraModel) -> None:
    p = plans(model, ["leaf-01"])
    obs = healthy(p["leaf-01"].expected)
    ip = next(iter(p["leaf-01"].expected.peers))
    obs.bgp["global"]["peers"][ip]["is_up"] = False
    sw = FakeSwitch([obs])
    r = read_device(sw, "leaf-01", plan=p)
    assert sw.reads == 1 and r.sessions_down == 1 and len(C.failing(r.checks)) == 1
