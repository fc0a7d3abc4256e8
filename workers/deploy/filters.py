"""Routes a policy filters on an Established session, told apart from routes still in flight (pure).

FRR 8.4's per-peer counts cannot tell "filtered" from "not received yet" (without
``soft-reconfiguration inbound``), and "sent > accepted" is normal in this fabric: a sender
also counts the routes its peer drops by eBGP AS-path loop prevention. So when a modelled
route is missing (a VTEP a ``vni`` check misses, a loopback or VTEP a ``rib`` check misses)
while every modelled session is Established, verification audits each direction of the
sessions that carry a policy for that family (an outbound one at the sender, an inbound one
at the receiver), with reads FRR gives without soft-reconfiguration:

* the sender's **adj-RIB-out** to the peer (``advertised-routes``, after its outbound policy),
  less the routes whose AS path holds the receiver's AS (the receiver drops those by loop
  prevention), against what the **receiver holds from that peer** (``routes``, after its
  inbound policy): a route sent, delivered and not held was **rejected inbound**;
* the sender's **best routes** (its local table) the receiver could accept (no receiver AS in
  the path), against its adj-RIB-out to the peer: a route not there was **filtered outbound**.

A route counts only once the updates have been delivered: the sender's OutQ and the receiver's
InQ empty, as many UPDATEs received by the receiver as sent by the sender, and the sender's
update-subgroup for that peer with nothing waiting (no coalesce timer running, an empty
advertise list and packet queue). :class:`FilterWatch` then asks for the same finding on two
consecutive reads with every counter of those sessions unchanged, so a route in flight is never
called filtered. A finding names the switch, the peer, the family, the policy FRR reports for
that neighbor and one route.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from lintas.workers.checks import Check

Family = Literal["ipv4", "evpn"]
FAMILIES: tuple[Family, ...] = ("evpn", "ipv4")
AF_KEY: dict[Family, str] = {"ipv4": "ipv4Unicast", "evpn": "l2VpnEvpn"}
LABEL: dict[Family, str] = {"ipv4": "IPv4 unicast", "evpn": "EVPN"}

_POLICY: dict[str, tuple[tuple[str, str], ...]] = {
    "in": (
        ("routeMapForIncomingAdvertisements", "route-map"),
        ("incomingUpdatePrefixFilterList", "prefix-list"),
        ("incomingUpdateAsPathFilterList", "filter-list"),
        ("incomingUpdateNetworkFilterList", "distribute-list"),
    ),
    "out": (
        ("routeMapForOutgoingAdvertisements", "route-map"),
        ("outgoingUpdatePrefixFilterList", "prefix-list"),
        ("outgoingUpdateAsPathFilterList", "filter-list"),
        ("outgoingUpdateNetworkFilterList", "distribute-list"),
    ),
}
_TYPE3 = re.compile(r"\[3\]:\[\d+\]:\[\d+\]:\[([^\]]+)\]$")


def policy(raw_peer: dict[str, Any], family: Family, direction: Literal["in", "out"]) -> str:
    """The policy a neighbor entry of ``show bgp neighbors json`` applies in one direction of a
    family (``"route-map RM-X, prefix-list PL-Y"``), "" when none."""
    af = (raw_peer.get("addressFamilyInfo") or {}).get(AF_KEY[family]) or {}
    names = [f"{kind} {af[k]}" for k, kind in _POLICY[direction] if isinstance(af.get(k), str) and af[k]]
    if not names and af.get("inboundPathPolicyConfig" if direction == "in" else "outboundPathPolicyConfig"):
        names = ["policy"]
    return ", ".join(names)


@dataclass(frozen=True, slots=True)
class End:
    """One end of a session as ``show bgp neighbors json`` reports it."""

    established: bool
    sent: int  # UPDATEs sent
    received: int  # UPDATEs received
    outq: int
    inq: int
    connections: int  # connectionsEstablished: a flap between two reads changes it

    @classmethod
    def of(cls, raw_peer: dict[str, Any]) -> End:
        ms = raw_peer.get("messageStats") or {}
        return cls(
            established=raw_peer.get("bgpState") == "Established",
            sent=int(ms.get("updatesSent") or 0),
            received=int(ms.get("updatesRecv") or 0),
            outq=int(ms.get("depthOutq") or 0),
            inq=int(ms.get("depthInq") or 0),
            connections=int(raw_peer.get("connectionsEstablished") or 0),
        )


@dataclass(frozen=True, slots=True)
class Leg:
    """One direction of a modelled session: ``sender`` sends to ``receiver`` (who sees the sender
    at ``sender_ip``; the sender sees the receiver at ``receiver_ip``)."""

    sender: str
    receiver_ip: str
    receiver: str
    sender_ip: str
    receiver_as: int


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """Routes of one family that a policy keeps from a receiver: ``direction`` "in" (the receiver
    rejects what the sender sent) or "out" (the sender does not send what it holds)."""

    sender: str
    receiver: str
    family: Family
    direction: Literal["in", "out"]
    policy: str
    routes: tuple[str, ...]

    def reason(self) -> str:
        n, what, eg = len(self.routes), LABEL[self.family], self.routes[0].split(" ")[-1]
        if self.direction == "in":
            return f"{self.receiver} rejects {n} {what} route(s) from {self.sender} (inbound {self.policy}): e.g. {eg}"
        return (
            f"{self.sender} filters {n} {what} route(s) it holds from {self.receiver} "
            f"(outbound {self.policy}): e.g. {eg}"
        )


def missing(checks: Iterable[Check]) -> dict[Family, set[str]]:
    """What failing checks miss: the remote VTEPs a ``vni`` check does not see (EVPN) and the
    prefixes a ``rib`` check does not find (IPv4 unicast)."""
    out: dict[Family, set[str]] = {"evpn": set(), "ipv4": set()}
    for c in checks:
        if c.passed is not False:
            continue
        if c.check == "vni" and isinstance(c.expected, dict):
            have = c.observed.get("remote_vteps") if isinstance(c.observed, dict) else None
            out["evpn"] |= set(c.expected.get("remote_vteps") or []) - set(have or [])
        elif c.check == "rib":
            out["ipv4"].add(c.subject)
    return {f: v for f, v in out.items() if v}


def wanted(family: Family, things: set[str]) -> Callable[[str], bool]:
    """Whether a route key is one of the missing things: an EVPN type-3 route of a missing VTEP, an
    IPv4 prefix missing."""
    if family == "evpn":

        def evpn(key: str) -> bool:
            m = _TYPE3.search(key)
            return m is not None and m.group(1) in things

        return evpn
    return lambda key: key in things


def _has_as(path: str, asn: int) -> bool:
    return str(asn) in re.sub(r"[{}(),\[\]]", " ", path).split()


def audit_plan(
    legs: list[Leg], raw: dict[str, dict[str, Any]], need: dict[Family, set[str]]
) -> dict[str, list[tuple[str, str]]]:
    """Per switch, the ``(family, neighbor)`` pairs to read (``get_fabric_state(adj=...)``): both
    ends of every leg Established with a policy for a family something is missing of."""
    out: dict[str, set[tuple[str, str]]] = {}
    for leg in legs:
        tx = (raw.get(leg.sender) or {}).get(leg.receiver_ip) or {}
        rx = (raw.get(leg.receiver) or {}).get(leg.sender_ip) or {}
        if not (End.of(tx).established and End.of(rx).established):
            continue
        for family in need:
            if policy(tx, family, "out") or policy(rx, family, "in"):
                out.setdefault(leg.sender, set()).add((family, leg.receiver_ip))
                out.setdefault(leg.receiver, set()).add((family, leg.sender_ip))
    return {d: sorted(v) for d, v in out.items()}


def audit(
    legs: list[Leg],
    raw: dict[str, dict[str, Any]],
    adj: dict[str, dict[str, Any]],
    need: dict[Family, set[str]],
) -> tuple[list[Finding], dict[str, tuple[int, ...]]]:
    """The findings on every leg both of whose ends were audited in this read, and the evidence
    they rest on (per leg, the counters of both ends: :class:`FilterWatch` wants them unchanged).
    ``raw``: per switch, its default VRF's neighbors; ``adj``: per switch, ``get_fabric_state``'s
    ``"adj"``; ``need``: :func:`missing`."""
    found: list[Finding] = []
    evidence: dict[str, tuple[int, ...]] = {}
    for leg in legs:
        tx_raw = (raw.get(leg.sender) or {}).get(leg.receiver_ip) or {}
        rx_raw = (raw.get(leg.receiver) or {}).get(leg.sender_ip) or {}
        tx, rx = End.of(tx_raw), End.of(rx_raw)
        for family, things in sorted(need.items()):
            s_adj = (adj.get(leg.sender) or {}).get(family) or {}
            r_adj = (adj.get(leg.receiver) or {}).get(family) or {}
            out = (s_adj.get("out") or {}).get(leg.receiver_ip)
            got = (r_adj.get("in") or {}).get(leg.sender_ip)
            if out is None or got is None or not _delivered(tx, rx, s_adj, leg.receiver_ip):
                continue
            key = f"{leg.sender}>{leg.receiver} {family}"
            evidence[key] = (tx.sent, tx.received, rx.sent, rx.received, tx.connections, rx.connections)
            want = wanted(family, things)
            sendable = {k for k, path in out.items() if want(k) and not _has_as(path, leg.receiver_as)}
            rejected = sorted(sendable - set(got))
            p_in = policy(rx_raw, family, "in")
            if rejected and p_in:
                found.append(Finding(leg.sender, leg.receiver, family, "in", p_in, tuple(rejected)))
            local = s_adj.get("local") or {}
            held = {k for k, path in local.items() if want(k) and not _has_as(path, leg.receiver_as)}
            kept = sorted(held - set(out))
            p_out = policy(tx_raw, family, "out")
            if kept and p_out:
                found.append(Finding(leg.sender, leg.receiver, family, "out", p_out, tuple(kept)))
    return found, evidence


def _delivered(tx: End, rx: End, s_adj: dict[str, Any], receiver_ip: str) -> bool:
    """Every update the sender made for the receiver has reached it and been read: both ends
    Established, the sender's OutQ and its update-subgroup empty, the receiver's InQ empty, and
    as many UPDATEs received as sent."""
    settled = bool((s_adj.get("settled") or {}).get(receiver_ip))
    return tx.established and rx.established and tx.outq == 0 and rx.inq == 0 and settled and tx.sent == rx.received


class FilterWatch:
    """Feed each audit's findings; :meth:`feed` answers the reasons once the same findings came
    from two consecutive audits with the same evidence (no UPDATE sent or received, no session
    re-established, on the sessions concerned, between them), else []."""

    def __init__(self) -> None:
        self._last: tuple[frozenset[Finding], dict[str, tuple[int, ...]]] | None = None

    def reset(self) -> None:
        self._last = None

    def feed(self, found: list[Finding], evidence: dict[str, tuple[int, ...]]) -> list[str]:
        if not found:
            self._last = None
            return []
        keys = {f"{f.sender}>{f.receiver} {f.family}" for f in found}
        now = (frozenset(found), {k: v for k, v in evidence.items() if k in keys})
        before, self._last = self._last, now
        if before is None or before != now:
            return []
        return [f.reason() for f in sorted(found)]
