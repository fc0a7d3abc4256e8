"""The stability rule of verify (workers.deploy.settle) on sequences of readings with their own
clock, and the verify loop (workers.deploy.fabric_verify) on fake switches: what ends it, which
pairs are probed, what is deterministic."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lintas.engine.settings import DeploySettings
from lintas.workers.deploy import checks as C
from lintas.workers.deploy.common import verify_hosts
from lintas.workers.deploy.fabric_verify import (
    SessionEnd,
    Settling,
    affected_pings,
    deterministic,
    digest,
    plans,
    read_device,
    session_failures,
    verify_fabric,
    why_down,
)
from lintas.workers.deploy.fleet import Outcome
from lintas.workers.deploy.settle import Reading, Stability
from lintas.workers.drivers.frr.reads import parse_session_keys, session_keys_filter
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

    def __init__(self, states: list[C.Observed], passwords: dict[str, str] | None = None) -> None:
        self.states, self.reads, self.probes = states, 0, 0
        self.passwords = passwords or {}  # peer ip -> the password configured for it
        self.keyed = 0  # reads that asked for the password digests

    def get_fabric_state(
        self, evpn: bool = True, pending: bool = False, session_keys: str | None = None
    ) -> dict[str, Any]:
        obs = self.states[min(self.reads, len(self.states) - 1)]
        self.reads += 1
        keys = {}
        if session_keys is not None:
            self.keyed += 1
            keys = {"session_keys": {ip: _digest(session_keys, pw) for ip, pw in self.passwords.items()}}
        return {
            **keys,
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


def _digest(nonce: str, password: str) -> str:
    return hashlib.sha256((nonce + password).encode()).hexdigest()[:32] if password else ""


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


# -- failures seen from both ends of a session (issue 16) -----------------------------------------------


def _link(model: InfraModel, a: str, b: str) -> tuple[str, str]:
    """(b's address, a's address) on the link a-b: a's peer ip for b, and b's for a."""
    p = plans(model, [a, b])
    ip_b = next(ip for ip, peer in p[a].expected.peers.items() if peer == b)
    return ip_b, p[a].back[ip_b]


def _ends(model: InfraModel, **over: Any) -> tuple[dict[str, Any], dict[str, dict[str, SessionEnd]]]:
    """Every modelled session Established with the model's ASNs; ``over``: "leaf-04@10.x" -> fields."""
    names = sorted(model.devices)
    p = plans(model, names)
    ends = {
        d: {ip: SessionEnd(True, "Established", p[d].asn, p[d].peer_asns[ip], key="k") for ip in p[d].expected.peers}
        for d in names
    }
    for where, fields in over.items():
        d, ip = where.split("@")
        old = ends[d][ip]
        ends[d][ip] = SessionEnd(**{**{f: getattr(old, f) for f in SessionEnd.__slots__}, **fields})
    return p, ends


def test_both_ends_up_or_down_for_no_known_cause_is_not_deterministic(model: InfraModel) -> None:
    ip, back = _link(model, "leaf-04", "spine-01")
    p, ends = _ends(model)
    assert session_failures(p, ends) == []
    p, ends = _ends(model, **{f"leaf-04@{ip}": {"up": False, "state": "Active"}, f"spine-01@{back}": {"up": False}})
    assert session_failures(p, ends) == []  # same ASNs, same password: it may still come up


def test_different_passwords_at_the_two_ends_fail_naming_both_switches_never_the_digest(model: InfraModel) -> None:
    ip, back = _link(model, "leaf-04", "spine-01")
    p, ends = _ends(
        model,
        **{
            f"leaf-04@{ip}": {"up": False, "state": "Active", "key": "aaaa"},
            f"spine-01@{back}": {"up": False, "state": "Connect", "key": "bbbb"},
        },
    )
    out = session_failures(p, ends)
    assert len(out) == 1  # one session, reported once
    assert out[0].startswith(f"leaf-04 session to {ip} (spine-01) not Established (Active)")
    assert "different TCP MD5 passwords" in out[0] and "aaaa" not in out[0] and "bbbb" not in out[0]
    # one end without a password
    p, ends = _ends(model, **{f"leaf-04@{ip}": {"up": False, "key": ""}, f"spine-01@{back}": {"up": False}})
    assert "spine-01 is configured with a TCP MD5 password for it, leaf-04 with none" in session_failures(p, ends)[0]
    # the digests of one end not read in this poll: nothing to compare yet
    p, ends = _ends(model, **{f"leaf-04@{ip}": {"up": False, "key": None}, f"spine-01@{back}": {"up": False}})
    assert session_failures(p, ends) == []


def test_an_as_the_other_end_does_not_speak_fails_with_the_peers_notification(model: InfraModel) -> None:
    ip, back = _link(model, "leaf-04", "spine-01")
    p, ends = _ends(
        model,
        **{
            f"spine-01@{back}": {
                "up": False,
                "state": "Active",
                "remote_as": 64999,
                "notification": "OPEN Message Error/Bad Peer AS",
                "reset": "BGP Notification send",
            },
            f"leaf-04@{ip}": {
                "up": False,
                "notification": "OPEN Message Error/Bad Peer AS",
                "reset": "BGP Notification received",
            },
        },
    )
    out = session_failures(p, ends)
    assert len(out) == 1 and f"leaf-04 session to {ip} (spine-01)" in out[0]
    assert f"spine-01 expects AS 64999, leaf-04 speaks AS {p['leaf-04'].asn}" in out[0]
    assert "BGP Notification send (OPEN Message Error/Bad Peer AS)" in out[0]


def test_a_bad_peer_as_notification_the_configs_no_longer_explain_is_stale_not_deterministic(
    model: InfraModel,
) -> None:
    ip, back = _link(model, "leaf-04", "spine-01")
    stale = {"up": False, "notification": "OPEN Message Error/Bad Peer AS", "reset": "BGP Notification received"}
    p, ends = _ends(model, **{f"leaf-04@{ip}": stale, f"spine-01@{back}": {"up": False}})
    assert session_failures(p, ends) == []
    # the model-level check of one switch names the notification beside the configured AS
    obs = healthy(p["spine-01"].expected)
    obs.bgp["global"]["peers"][back].update(is_up=False, remote_as=64999)
    raw = {
        back: {"lastNotificationReason": "OPEN Message Error/Bad Peer AS", "lastResetDueTo": "BGP Notification send"}
    }
    (reason,) = deterministic(p["spine-01"], obs, raw)
    assert "remote AS 64999" in reason and "Bad Peer AS" in reason
    # FRR's code and subcode alone (02: OPEN Message Error, 02: Bad Peer AS) name it too
    (reason,) = deterministic(p["spine-01"], obs, {back: {"lastErrorCodeSubcode": "0202"}})
    assert "NOTIFICATION: OPEN Message Error/Bad Peer AS" in reason


def _session_down(model: InfraModel, a: str, b: str) -> tuple[str, str, FakeFleet]:
    """A healthy fake fabric but for the session a-b, down at both ends: (b's address, a's, the fleet)."""
    ip, back = _link(model, a, b)

    def down(peer_ip: str) -> Any:
        def edit(obs: C.Observed) -> C.Observed:
            obs.bgp["global"]["peers"][peer_ip]["is_up"] = False
            return obs

        return edit

    return ip, back, _fleet(model, {a: down(ip), b: down(back)})


def test_the_loop_reads_the_password_digests_of_down_sessions_and_fails_at_the_second_read(
    model: InfraModel,
) -> None:
    ip, back, fleet = _session_down(model, "leaf-04", "spine-01")
    fleet.switches["leaf-04"].passwords = {ip: "wrong"}
    fleet.switches["spine-01"].passwords = {back: "right"}
    v = _run(model, fleet, settle_s=10.0, timeout_s=60.0)
    assert v.verdict.ended_by == "deterministic" and v.reads == 2, v.verdict
    assert "leaf-04 session to" in v.verdict.reason and "(spine-01)" in v.verdict.reason
    assert "different TCP MD5 passwords" in v.verdict.reason
    # only the two ends of the down session were asked for digests, once each
    assert {n for n, s in fleet.switches.items() if s.keyed} == {"leaf-04", "spine-01"}
    assert fleet.switches["leaf-04"].keyed == 1


def test_the_session_keys_filter_digests_on_the_switch_and_resolves_peer_groups() -> None:
    config = (
        "router bgp 65001\n neighbor UNDERLAY peer-group\n neighbor UNDERLAY password s3cr$t'x\"y\n"
        " neighbor 10.1.0.1 remote-as 65000\n neighbor 10.1.0.1 peer-group UNDERLAY\n"
        " neighbor 10.1.0.3 peer-group UNDERLAY\n neighbor 10.1.0.3 password other\n"
        " neighbor 10.1.0.5 remote-as 65000\nexit\n!\nrouter bgp 65001 vrf UAT\n neighbor 10.9.9.9 password v\nexit\n"
    )
    nonce = "00112233445566778899aabbccddeeff"
    out = subprocess.run(
        ["sh", "-c", session_keys_filter(nonce)], input=config, capture_output=True, text=True, check=True
    ).stdout
    assert "s3cr" not in out and "other" not in out.replace("peer-group", "")
    keys = parse_session_keys(out)
    assert keys == {"10.1.0.1": _digest(nonce, "s3cr$t'x\"y"), "10.1.0.3": _digest(nonce, "other")}
    with pytest.raises(ValueError, match="nonce"):
        session_keys_filter("x'; reboot; '")


# -- the windows as settings -----------------------------------------------------------------------------


def test_the_windows_are_settings_validated_in_order() -> None:
    d = DeploySettings(verify_quiet_s=0.5, verify_settle_s=2.0, verify_poll_s=0.2, verify_timeout_s=30)
    s = Settling.of("verify", d)
    assert (s.timeout_s, s.quiet_s, s.settle_s, s.poll_s) == (30, 0.5, 2.0, 0.2)
    assert Settling.of("verify", DeploySettings()).settle_s == 3.0
    with pytest.raises(ValueError, match="in order"):
        DeploySettings(verify_quiet_s=4.0, verify_settle_s=3.0)
    with pytest.raises(ValueError, match="in order"):
        DeploySettings(verify_settle_s=20.0, verify_timeout_s=10.0)
    with pytest.raises(ValueError, match="verify_poll_s"):
        DeploySettings(verify_poll_s=2.0)


# -- the hosts' loop by the same rule ----------------------------------------------------------------------


class FakeHosts:
    """Answers each round from a script of per-host checks (the last round repeats)."""

    timeout_s = 5.0

    def __init__(self, rounds: list[list[C.Check]]) -> None:
        self.rounds, self.calls = rounds, 0
        self.conns = {"kvm-1": type("Conn", (), {"libvirt_display": "qemu+libssh://kvm-1"})()}

    async def run(self, bundles: Any, fn: Any) -> dict[str, Outcome[Any]]:
        got = self.rounds[min(self.calls, len(self.rounds) - 1)]
        self.calls += 1
        return {"kvm-1": Outcome(got, None)}


def _host_check(check: str, passed: bool, observed: str) -> C.Check:
    return C.Check(device="kvm-1", check=check, subject="s", passed=passed, expected="x", observed=observed)  # type: ignore[arg-type]


def _verify_hosts(hosts: FakeHosts, **windows: Any) -> Any:
    settling = Settling("verify", **{"timeout_s": 20.0, "quiet_s": 0.2, "settle_s": 0.5, "poll_s": 0.05, **windows})
    return asyncio.run(
        verify_hosts(hosts, {"kvm-1": {}}, log=Log(), settling=settling, deletions_allowed=False, probes={})  # type: ignore[arg-type]
    )


def test_hosts_are_stable_only_after_the_quiet_window() -> None:
    hosts = FakeHosts([[_host_check("domain", False, "shut off")], [_host_check("domain", True, "running")]])
    v = _verify_hosts(hosts)
    assert v.verdict.ended_by == "stable" and v.verdict.passed and v.rounds >= 3
    assert v.summary()["ended_by"] == "stable"


def test_hosts_failing_unchanged_settle_as_failed_but_a_transient_failure_waits() -> None:
    v = _verify_hosts(FakeHosts([[_host_check("domain", False, "memory 64, want 128")]]))
    assert v.verdict.ended_by == "settled" and not v.verdict.passed
    assert C.failing(v.checks)[0].observed == "memory 64, want 128"
    waits = _verify_hosts(FakeHosts([[_host_check("ovs-health", False, "no OpenFlow port")]]), timeout_s=1.0)
    assert waits.verdict.ended_by == "timeout" and waits.rounds > 5


def test_why_down_reads_a_waves_switches_and_their_peers_and_names_what_cannot_heal(model: InfraModel) -> None:
    ip, back, fleet = _session_down(model, "leaf-04", "spine-01")
    everyone = set(model.devices)
    # down, same passwords: it may come up
    assert asyncio.run(why_down(fleet, model, ["leaf-04"], everyone)) == []  # type: ignore[arg-type]
    read = {n for n, s in fleet.switches.items() if s.reads}
    assert read == {"leaf-04", "spine-01", "spine-02"}  # the wave and its peers only
    fleet.switches["leaf-04"].passwords = {ip: "pushed"}
    fleet.switches["spine-01"].passwords = {back: "fabric"}
    (why,) = asyncio.run(why_down(fleet, model, ["leaf-04"], everyone))  # type: ignore[arg-type]
    assert why.startswith(f"leaf-04 session to {ip} (spine-01)") and "different TCP MD5 passwords" in why
    # a peer not configured yet (a later wave) is not the gate's business: not read, not judged
    fleet.switches["spine-01"].reads = 0
    assert asyncio.run(why_down(fleet, model, ["leaf-04"], everyone - {"spine-01"})) == []  # type: ignore[arg-type]
    assert fleet.switches["spine-01"].reads == 0
