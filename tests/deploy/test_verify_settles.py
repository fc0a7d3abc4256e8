"""Issue 16 on the real lab, through `git push` and a real `lintas up`: verify ends on the control
plane's own signals, not on its timeout.

* a good one-VNI change is verified by stability (``ended_by: stable``) within seconds, probing
  only the pairs of the changed leaf;
* a change that cannot converge (leaf-04 filters every EVPN route it sends: a repo-local
  template override) fails at once as ``deterministic``, naming the outbound route-map and a route
  it keeps (leaf-04 holds its type-3 routes, its adj-RIB-out to the spines lacks them), and is
  rolled back; rollback's re-verification ends by the same rule;
* a VNI added on two leaves (each misses the other's VTEP while the routes travel) is verified by
  ``stable``: a route in flight is never called filtered;
* an inbound route-map set by hand on leaf-04 (the spines send, leaf-04 holds nothing from them)
  fails verify at once, naming leaf-04, the spine, the route-map and a route it rejects; the same
  for an IPv4 unicast inbound prefix filter, read per prefix, and the audit's byte cap.

* failures waiting cannot heal fail at once, read on the real switches (verify of the lab as it
  stands, after a switch was changed by hand): two ends of a session configured with different
  passwords (FRR shows only Active/Connect: the digests of the two ends' passwords are compared),
  and a session configured for an AS its peer does not speak (the peer's NOTIFICATION named);
* the same through `git push` (a template override gives leaf-04 another password): the deploy's
  health gate fails at once with the cause, not after its timeout, and rollback restores leaf-04.

The lab and `lintas up` come from :mod:`tests.deploy.test_fabric_e2e`'s fixtures (a lab of its
own for this module); its ``verify_timeout`` there is 25 s.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from bench.breakage import write_password_override
from lintas.engine.settings import Settings
from lintas.workers.deploy.fabric_verify import FabricVerification, Settling, plans, verify_fabric
from lintas.workers.deploy.fleet import Fleet
from lintas.workers.drivers.frr.errors import FrrCommandError
from lintas.workers.model import load_model
from tests.deploy import test_fabric_e2e as e2e
from tests.deploy.test_fabric_e2e import (
    HEALTH_TIMEOUT_S,
    VERIFY_TIMEOUT_S,
    VTEP,
    Env,
    Switches,
    add_network,
    by_hand,
    filter_evpn_of,
    stage,
    wait_for,
)

pytestmark = [pytest.mark.integration]

lab_settings, lx, sw = e2e.lab_settings, e2e.lx, e2e.sw  # the fixtures: a lab and a `lintas up` of this module


def test_a_good_change_is_verified_by_stability(lx: Env, sw: Switches) -> None:
    first = lx.drive(lx.new_run(lx.git("rev-parse", "HEAD"), timeout=60))
    assert first["state"] == "succeeded", first["error"]
    assert stage(first, "verify")["summary"]["ended_by"] == "stable"
    run = lx.push_and_drive("add VNI 10040 on leaf-01", add_network("uat-x", 40, 10040, ["leaf-01"]))
    assert run["state"] == "succeeded", run["error"]
    v = stage(run, "verify")
    assert v["summary"]["ended_by"] == "stable" and v["summary"]["probed_for"] == ["leaf-01"]
    assert v["summary"]["totals"]["failed"] == 0 and v["summary"]["totals"]["passed"] > 100
    # leaf-01 probes its 2 uplinks and 3 VTEPs; each other leaf leaf-01's VTEP, each spine its link to leaf-01
    assert v["summary"]["probes"] >= 2 + 3 + 3 + 2
    assert v["duration_s"] < VERIFY_TIMEOUT_S / 2, v["duration_s"]


def test_a_change_that_cannot_converge_fails_fast_with_its_reason_and_is_rolled_back(lx: Env, sw: Switches) -> None:
    run = lx.push_and_drive("leaf-04: filter its EVPN routes (template override)", filter_evpn_of("leaf-04"))
    assert run["state"] == "rolled_back", run["error"]
    v = stage(run, "verify")
    assert v["state"] == "failed" and v["summary"]["ended_by"] == "deterministic", v["summary"]
    reason = v["summary"]["reason"]
    assert "leaf-04 filters" in reason and "EVPN route(s) it holds from spine-0" in reason, reason
    assert "(outbound route-map RM-EVPN-DENY-OUT): e.g. [3]:[0]:[32]:[" + VTEP["leaf-04"] + "]" in reason, reason
    assert "deterministic" in run["error"] and VTEP["leaf-04"] in run["error"] and "vni" in run["error"]
    # at once: the audit needs two reads after the one that saw the VTEP missing (the settle window is 3 s)
    assert v["summary"]["reads"] <= 6 and v["duration_s"] < 8 < VERIFY_TIMEOUT_S, (v["summary"], v["duration_s"])
    rb = stage(run, "rollback")
    assert rb["state"] == "succeeded" and rb["summary"]["restored"] == ["leaf-04"]
    assert rb["summary"]["reverify"]["ended_by"] == "stable" and rb["summary"]["totals"]["failed"] == 0
    assert sw.pending() == [] and sw.fabric_up()
    assert sw.remote_vteps("leaf-01", 10010) == [VTEP["leaf-02"], VTEP["leaf-03"], VTEP["leaf-04"]]
    back = lx.push_and_drive("drop the template override", lambda repo: lx.git("rm", "-q", "-r", "templates/frr"))
    assert back["state"] == "succeeded", back["error"]


def test_routes_in_flight_after_a_good_change_are_never_called_filtered(lx: Env, sw: Switches) -> None:
    """Each of leaf-02 and leaf-03 misses the other's VTEP in the new VNI until the type-3 routes
    crossed the spines, whose EVPN sessions carry an outbound route-map (next hop unchanged): the
    audit runs on those sessions and must not call a route on its way filtered."""
    run = lx.push_and_drive(
        "add VNI 10050 on leaf-02 and leaf-03", add_network("uat-y", 50, 10050, ["leaf-02", "leaf-03"])
    )
    assert run["state"] == "succeeded", run["error"]
    v = stage(run, "verify")
    assert v["summary"]["ended_by"] == "stable" and v["summary"]["totals"]["failed"] == 0, v["summary"]
    assert sw.remote_vteps("leaf-02", 10050) == [VTEP["leaf-03"]]


# -- deterministic failures on the real switches -------------------------------------------------------


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def info(self, text: str) -> None:
        self.lines.append(text)


def verify_now(lab_settings: Settings, lx: Env) -> FabricVerification:
    """Verify of the lab as it stands, against the repo's model (verify's own code, real sessions)."""
    model = load_model(lx.work)
    fleet = Fleet(model, Settings(home=lab_settings.home), sorted(model.devices))
    try:
        return asyncio.run(
            verify_fabric(
                fleet,
                model,
                sorted(model.devices),
                log=_Log(),  # type: ignore[arg-type]
                settling=Settling("verify", VERIFY_TIMEOUT_S),
                changed=set(),
            )
        )
    finally:
        fleet.close()


def _link(lx: Env, a: str, b: str) -> tuple[str, str, int, int]:
    """b's address on the link a-b, a's address on it, a's ASN and b's ASN (the model's)."""
    model = load_model(lx.work)
    p = plans(model, [a, b])
    ip_b = next(ip for ip, peer in p[a].expected.peers.items() if peer == b)
    return ip_b, p[a].back[ip_b], p[a].asn, p[b].asn


def password_of(leaf: str) -> Any:
    return lambda repo: write_password_override(repo, leaf)


def _remediate(lx: Env) -> dict[str, Any]:
    fixed = lx.cli("drift", "--remediate", "--json", check=False)
    runs = json.loads(fixed.stdout)["remediation_runs"]
    assert len(runs) == 1, fixed.stdout
    lx.seen.add(runs[0])
    return lx.drive(runs[0])


def test_different_passwords_at_the_two_ends_fail_at_once_naming_the_session(
    lx: Env, sw: Switches, lab_settings: Settings
) -> None:
    ip_spine, ip_leaf, asn_leaf, _ = _link(lx, "leaf-04", "spine-01")
    secret = lx.env["FABRIC_BGP_PASSWORD"]
    # leaf-04's session to spine-01 alone gets another password (its own, over the peer-group's)
    by_hand(lab_settings, "leaf-04", "conf t", f"router bgp {asn_leaf}", f"neighbor {ip_spine} password Other-pw-9")
    wait_for(
        "the session to go down",
        lambda: not sw.ask("leaf-04", lambda d: d.get_bgp_neighbors())["global"]["peers"][ip_spine]["is_up"],
        30,
    )
    v = verify_now(lab_settings, lx)
    assert v.verdict.ended_by == "deterministic" and not v.verdict.passed, v.verdict
    assert v.reads <= 3 and v.elapsed_s < 8, (v.reads, v.elapsed_s)  # at once, not after settle/timeout
    assert f"leaf-04 session to {ip_spine} (spine-01) not Established" in v.verdict.reason
    assert "different TCP MD5 passwords" in v.verdict.reason
    assert secret not in v.verdict.reason and "Other-pw-9" not in v.verdict.reason
    # back through the pipeline: drift finds leaf-04 changed and a normal run re-applies it
    run = _remediate(lx)
    assert run["state"] == "succeeded", run["error"]
    wait_for("the fabric back up", sw.fabric_up, 60)


def test_an_as_the_peer_does_not_speak_fails_at_once_with_its_notification(
    lx: Env, sw: Switches, lab_settings: Settings
) -> None:
    ip_leaf, ip_spine, asn_spine, asn_leaf = _link(lx, "spine-02", "leaf-03")
    by_hand(lab_settings, "spine-02", "conf t", f"router bgp {asn_spine}", f"neighbor {ip_leaf} remote-as 64999")

    def refused() -> bool:
        peers = sw.ask("spine-02", lambda d: d.get_bgp_neighbors())["global"]["peers"]
        return not peers[ip_leaf]["is_up"]

    wait_for("the session to go down", refused, 30)
    v = verify_now(lab_settings, lx)
    reason = v.verdict.reason
    assert f"spine-02 session to {ip_leaf} (leaf-03) not Established: configured with remote AS 64999" in reason
    assert f"the model says {asn_leaf}" in reason
    assert f"spine-02 expects AS 64999, leaf-03 speaks AS {asn_leaf}" in reason  # both ends, same poll

    # once leaf-03 tries again (FRR's connect retry), spine-02 refuses its OPEN: the NOTIFICATION is named
    def notified() -> bool:
        cmd = f"show bgp neighbors {ip_leaf} json"
        return "Bad Peer AS" in str(sw.ask("spine-02", lambda d: d.cli([cmd]))[cmd])

    wait_for("spine-02 to refuse leaf-03's OPEN", notified, 40)
    v = verify_now(lab_settings, lx)
    assert v.verdict.ended_by == "deterministic" and v.reads == 1, v.verdict
    assert "(BGP Notification send: OPEN Message Error/Bad Peer AS)" in v.verdict.reason, v.verdict.reason
    assert "the peer refused it:" in v.verdict.reason
    assert "spine-02: BGP Notification send (OPEN Message Error/Bad Peer AS)" in v.verdict.reason
    by_hand(lab_settings, "spine-02", "conf t", f"router bgp {asn_spine}", f"neighbor {ip_leaf} remote-as {asn_leaf}")
    wait_for("the fabric back up", sw.fabric_up, 60)
    again = verify_now(lab_settings, lx)
    assert again.verdict.ended_by == "stable", again.verdict


def test_a_pushed_password_its_peers_do_not_share_fails_the_health_gate_at_once(lx: Env, sw: Switches) -> None:
    """Through `git push`: a template override gives leaf-04's underlay another password than the
    spines' (no secret in the repo). Its sessions can never come up; the deploy's health gate
    compares the two ends at once instead of waiting its whole timeout, and rollback restores it."""
    t0 = time.monotonic()
    run = lx.push_and_drive("leaf-04: another BGP password (template override)", password_of("leaf-04"))
    assert run["state"] == "rolled_back", run["error"]
    d = stage(run, "deploy")
    assert d["state"] == "failed" and "leaf-04" in run["error"], run["error"]
    assert "different TCP MD5 passwords" in run["error"] and "(spine-0" in run["error"], run["error"]
    assert lx.env["FABRIC_BGP_PASSWORD"] not in json.dumps(run)
    assert d["duration_s"] < HEALTH_TIMEOUT_S / 2, d["duration_s"]  # at once, not the gate's timeout
    assert time.monotonic() - t0 < 90
    rb = stage(run, "rollback")
    assert rb["state"] == "succeeded" and rb["summary"]["restored"] == ["leaf-04"], rb["summary"]
    wait_for("the fabric back up", sw.fabric_up, 60)
    back = lx.push_and_drive("drop the template override", lambda repo: lx.git("rm", "-q", "-r", "templates/frr"))
    assert back["state"] == "succeeded", back["error"]


def test_an_inbound_route_map_that_rejects_evpn_routes_fails_at_once_naming_it(
    lx: Env, sw: Switches, lab_settings: Settings
) -> None:
    """By hand: leaf-04 denies every EVPN route its spines send (FRR asks them to send again: a
    route refresh). The spines' adj-RIB-out to leaf-04 holds the other leaves' type-3 routes
    (without leaf-04's AS in their path), leaf-04 holds none of them: rejected inbound, named."""
    _, _, asn_leaf, _ = _link(lx, "leaf-04", "spine-01")
    by_hand(
        lab_settings,
        "leaf-04",
        "conf t",
        "route-map EVPN-IN deny 10",
        "exit",
        f"router bgp {asn_leaf}",
        "address-family l2vpn evpn",
        "neighbor UNDERLAY route-map EVPN-IN in",
    )
    try:
        wait_for(
            "leaf-04 to lose leaf-01's VTEP",
            lambda: VTEP["leaf-01"] not in (sw.remote_vteps("leaf-04", 10010) or []),
            30,
        )
        v = verify_now(lab_settings, lx)
        assert v.verdict.ended_by == "deterministic" and not v.verdict.passed, v.verdict
        assert v.reads <= 4, (v.reads, v.verdict)  # at once: not the settle window nor the timeout
        reason = v.verdict.reason
        assert "leaf-04 rejects" in reason and "EVPN route(s) from spine-01 (inbound route-map EVPN-IN)" in reason, (
            reason
        )
        assert "EVPN route(s) from spine-02 (inbound route-map EVPN-IN)" in reason, reason
        assert "e.g. [3]:[0]:[32]:[10.250.1.1" in reason, reason  # another leaf's VTEP
        assert "filters" not in reason  # the spines send them: nothing is kept outbound
    finally:
        by_hand(
            lab_settings,
            "leaf-04",
            "conf t",
            f"router bgp {asn_leaf}",
            "address-family l2vpn evpn",
            "no neighbor UNDERLAY route-map EVPN-IN in",
            "exit-address-family",
            "exit",
            "no route-map EVPN-IN",
        )
    wait_for(
        "leaf-04 to learn leaf-01's VTEP again",
        lambda: VTEP["leaf-01"] in (sw.remote_vteps("leaf-04", 10010) or []),
        30,
    )
    again = verify_now(lab_settings, lx)
    assert again.verdict.ended_by == "stable", again.verdict


def test_an_inbound_prefix_filter_on_the_underlay_fails_at_once_read_per_prefix(
    lx: Env, sw: Switches, lab_settings: Settings
) -> None:
    """By hand: leaf-04 denies leaf-01's loopback from its spines (IPv4 unicast, inbound: a
    route-map in place of the template's RM-UNDERLAY-IN, which is put back after). Verify
    reads only that prefix (``show bgp ipv4 unicast <prefix> json``) on the sessions it travels to
    leaf-04, and names the route-map and both spines; the spines' adj-RIB-out is the prefix's
    ``advertisedTo``. A read beyond the audit's byte cap fails with the cap named."""
    ip_spine, ip_leaf, asn_leaf, _ = _link(lx, "leaf-04", "spine-01")
    lo = f"{load_model(lx.work).devices['leaf-01'].loopback}/32"
    by_hand(
        lab_settings,
        "leaf-04",
        "conf t",
        f"ip prefix-list LX-V4-IN seq 5 deny {lo}",
        "ip prefix-list LX-V4-IN seq 10 permit 0.0.0.0/0 le 32",
        "route-map V4-IN permit 10",
        "match ip address prefix-list LX-V4-IN",
        "exit",
        f"router bgp {asn_leaf}",
        "address-family ipv4 unicast",
        "neighbor UNDERLAY route-map V4-IN in",
    )
    try:
        wait_for(
            "leaf-04 to lose leaf-01's loopback", lambda: lo not in sw.ask("leaf-04", lambda d: d.get_ipv4_routes()), 30
        )
        spine = sw.ask("spine-01", lambda d: d.get_fabric_state(evpn=False, adj=[("ipv4", ip_leaf)], prefixes=[lo]))
        got = spine["adj"]["ipv4"]
        assert got["local"][lo] and got["out"][ip_leaf] == {lo: got["local"][lo]}, got  # sent to leaf-04
        assert got["settled"][ip_leaf] is True, got
        leaf = sw.ask("leaf-04", lambda d: d.get_fabric_state(evpn=False, adj=[("ipv4", ip_spine)], prefixes=[lo]))
        assert leaf["adj"]["ipv4"]["in"][ip_spine] == [] and lo not in leaf["adj"]["ipv4"]["local"], leaf["adj"]
        with pytest.raises(FrrCommandError, match="exceed 64 bytes"):
            sw.ask(
                "spine-01",
                lambda d: d.get_fabric_state(evpn=False, adj=[("ipv4", ip_leaf)], prefixes=[lo], adj_max_bytes=64),
            )
        v = verify_now(lab_settings, lx)
        assert v.verdict.ended_by == "deterministic" and not v.verdict.passed, v.verdict
        assert v.reads <= 4, (v.reads, v.verdict)
        reason = v.verdict.reason
        for s in ("spine-01", "spine-02"):
            assert f"leaf-04 rejects 1 IPv4 unicast route(s) from {s} (inbound route-map V4-IN): e.g. {lo}" in reason, (
                reason
            )
        assert "filters" not in reason, reason
    finally:
        by_hand(
            lab_settings,
            "leaf-04",
            "conf t",
            f"router bgp {asn_leaf}",
            "address-family ipv4 unicast",
            "neighbor UNDERLAY route-map RM-UNDERLAY-IN in",  # the template's, back
            "exit-address-family",
            "exit",
            "no route-map V4-IN",
            "no ip prefix-list LX-V4-IN",
        )
    wait_for(
        "leaf-04 to learn leaf-01's loopback again", lambda: lo in sw.ask("leaf-04", lambda d: d.get_ipv4_routes()), 30
    )
    again = verify_now(lab_settings, lx)
    assert again.verdict.ended_by == "stable", again.verdict
