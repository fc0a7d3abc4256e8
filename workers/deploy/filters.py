"""Routes a policy filters on an Established session, told apart from routes still in flight (pure).

FRR 8.4's per-peer counts cannot tell "filtered" from "not received yet" (without
``soft-reconfiguration inbound``), and "sent > accepted" is normal in this fabric: a sender
also counts the routes its peer drops by eBGP AS-path loop prevention. So when a switch misses
a modelled route (a VTEP its ``vni`` check misses, a loopback or VTEP its ``rib`` check misses)
while every modelled session is Established, verification audits **that switch's** paths to
the route: the sessions on a shortest session path from the switch that originates the route
to the one that misses it (:func:`route_legs`; in a spine-leaf fabric a leaf's route reaches
another leaf through the spines: spine→leaf on the last hop, origin→spine on the first), and
only when one of them carries a policy for the family. On each such leg, with reads FRR gives
without soft-reconfiguration (only the missing prefixes for IPv4 unicast; EVPN's type-3 table
and the audited neighbors' tables):

* the sender's **adj-RIB-out** to the peer (after its outbound policy), less the routes whose AS
  path holds the receiver's AS (loop prevention), against what the **receiver holds from that
  peer** (after its inbound policy): a route sent, delivered and not held was **rejected inbound**;
* the sender's **best routes** the receiver could accept, against its adj-RIB-out to the peer: a
  route not there was **filtered outbound**.

A leg counts only once the updates have been delivered: the sender's OutQ and the receiver's
InQ empty, as many UPDATEs received by the receiver as sent by the sender, and the sender's
update-subgroup for that peer with nothing waiting. The route is called filtered only when
**every** leg into the switch that misses it is closed (delivered, and the route kept by a
policy, or the sender lacks it and every leg into the sender is closed in turn) and a policy
closed one of them: a route still in flight on one path is never called filtered because a
policy keeps it on another, and a policy on a session no missing route travels is never read.
:class:`FilterWatch` then asks for the same findings on two consecutive reads with every
counter of the legs they rest on unchanged. A finding names the switch, the peer, the family,
the policy FRR reports for that neighbor and one route.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from lintas.workers.checks import Check


class _Ended(Protocol):
    @property
    def ended_by(self) -> str: ...


_V = TypeVar("_V", bound=_Ended)
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


@dataclass(frozen=True, slots=True, order=True)
class Miss:
    """A modelled route one switch misses: a remote VTEP (EVPN) or a prefix (IPv4 unicast)."""

    switch: str
    family: Family
    thing: str


def missing(checks: Iterable[Check]) -> set[Miss]:
    """What failing checks miss, per switch: the remote VTEPs a ``vni`` check does not see (EVPN)
    and the prefixes a ``rib`` check does not find (IPv4 unicast)."""
    out: set[Miss] = set()
    for c in checks:
        if c.passed is not False:
            continue
        if c.check == "vni" and isinstance(c.expected, dict):
            have = c.observed.get("remote_vteps") if isinstance(c.observed, dict) else None
            out |= {Miss(c.device, "evpn", v) for v in set(c.expected.get("remote_vteps") or []) - set(have or [])}
        elif c.check == "rib":
            out.add(Miss(c.device, "ipv4", c.subject))
    return out


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


def _hops(legs: list[Leg], start: str, forward: bool) -> dict[str, int]:
    """Session hops from ``start`` (along the legs, or against them)."""
    dist, frontier = {start: 0}, [start]
    while frontier:
        nxt = []
        for node in frontier:
            for leg in legs:
                a, b = (leg.sender, leg.receiver) if forward else (leg.receiver, leg.sender)
                if a == node and b not in dist:
                    dist[b] = dist[node] + 1
                    nxt.append(b)
        frontier = nxt
    return dist


def route_legs(legs: list[Leg], origin: str | None, target: str) -> list[Leg]:
    """The legs a route from ``origin`` travels to ``target``: those on a shortest session path
    (eBGP prefers the shortest AS path); without a known origin, or none reaching, the legs into
    ``target``."""
    if origin is not None and origin != target:
        fwd, back = _hops(legs, origin, True), _hops(legs, target, False)
        if target in fwd:
            n = fwd[target]
            return [
                g for g in legs if g.sender in fwd and g.receiver in back and fwd[g.sender] + 1 + back[g.receiver] == n
            ]
    return [g for g in legs if g.receiver == target]


@dataclass(frozen=True, slots=True)
class Scope:
    """One missing route and the legs it travels to the switch that misses it."""

    miss: Miss
    legs: tuple[Leg, ...]


def _end(raw: dict[str, dict[str, Any]], switch: str, ip: str) -> dict[str, Any]:
    return (raw.get(switch) or {}).get(ip) or {}


def scopes(legs: list[Leg], raw: dict[str, dict[str, Any]], misses: set[Miss], origins: dict[str, str]) -> list[Scope]:
    """The missing routes worth an audit: every leg they travel Established at both ends, and
    one with a policy for the family (else no policy can be what keeps them). ``origins``: a
    VTEP or prefix -> the switch that originates it."""
    out = []
    for m in sorted(misses):
        path = route_legs(legs, origins.get(m.thing), m.switch)
        ends = [(_end(raw, g.sender, g.receiver_ip), _end(raw, g.receiver, g.sender_ip)) for g in path]
        if not path or not all(End.of(tx).established and End.of(rx).established for tx, rx in ends):
            continue
        if any(policy(tx, m.family, "out") or policy(rx, m.family, "in") for tx, rx in ends):
            out.append(Scope(m, tuple(path)))
    return out


@dataclass(frozen=True, slots=True)
class Reads:
    """What the audit reads of one switch: ``get_fabric_state(adj=pairs, prefixes=prefixes)``."""

    pairs: tuple[tuple[str, str], ...]
    prefixes: tuple[str, ...] = ()


def audit_plan(found: list[Scope]) -> dict[str, Reads]:
    """Per switch, its reads for the scopes: of each leg, the sender's and the receiver's tables
    for that neighbor (IPv4: the missing prefixes only)."""
    pairs: dict[str, set[tuple[str, str]]] = {}
    prefixes: dict[str, set[str]] = {}
    for sc in found:
        fam = sc.miss.family
        for g in sc.legs:
            pairs.setdefault(g.sender, set()).add((fam, g.receiver_ip))
            pairs.setdefault(g.receiver, set()).add((fam, g.sender_ip))
            if fam == "ipv4":
                prefixes.setdefault(g.sender, set()).add(sc.miss.thing)
                prefixes.setdefault(g.receiver, set()).add(sc.miss.thing)
    return {d: Reads(tuple(sorted(v)), tuple(sorted(prefixes.get(d, ())))) for d, v in sorted(pairs.items())}


@dataclass(slots=True)
class _Walk:
    """One scope's walk back from the switch that misses the route."""

    sc: Scope
    raw: dict[str, dict[str, Any]]
    adj: dict[str, dict[str, Any]]
    found: list[Finding]
    evidence: dict[str, tuple[int, ...]]

    def closed(self, target: str, seen: frozenset[str]) -> bool:
        """Whether every leg of the scope into ``target`` is closed for the route: delivered, and
        kept by a policy (a finding), or dropped by loop prevention, or the sender lacks the route
        and every leg into it is closed in turn."""
        into = [g for g in self.sc.legs if g.receiver == target and g.sender not in seen]
        return bool(into) and all(self._leg(g, seen | {target}) for g in into)

    def _leg(self, g: Leg, seen: frozenset[str]) -> bool:
        family, want = self.sc.miss.family, wanted(self.sc.miss.family, {self.sc.miss.thing})
        tx_raw, rx_raw = _end(self.raw, g.sender, g.receiver_ip), _end(self.raw, g.receiver, g.sender_ip)
        tx, rx = End.of(tx_raw), End.of(rx_raw)
        s_adj = (self.adj.get(g.sender) or {}).get(family) or {}
        r_adj = (self.adj.get(g.receiver) or {}).get(family) or {}
        out = (s_adj.get("out") or {}).get(g.receiver_ip)
        got = (r_adj.get("in") or {}).get(g.sender_ip)
        if out is None or got is None or not _delivered(tx, rx, s_adj, g.receiver_ip):
            return False  # not read, or updates still travelling: open
        self.evidence[f"{g.sender}>{g.receiver} {family}"] = (
            tx.sent,
            tx.received,
            rx.sent,
            rx.received,
            tx.connections,
            rx.connections,
        )
        local = {k: p for k, p in (s_adj.get("local") or {}).items() if want(k)}
        if not local:
            return g.sender != self.sc.miss.switch and self.closed(g.sender, seen)
        held = {k for k, p in local.items() if not _has_as(p, g.receiver_as)}
        kept = sorted(held - set(out))
        sent = {k for k, p in out.items() if want(k) and not _has_as(p, g.receiver_as)}
        rejected = sorted(sent - set(got))
        p_out, p_in = policy(tx_raw, family, "out"), policy(rx_raw, family, "in")
        if kept and p_out:
            self.found.append(Finding(g.sender, g.receiver, family, "out", p_out, tuple(kept)))
        if rejected and p_in:
            self.found.append(Finding(g.sender, g.receiver, family, "in", p_in, tuple(rejected)))
        # open when the receiver holds the route from the sender (what misses it has not caught up:
        # zebra, the VNI's VTEP list), or a route the sender could send is neither kept by its
        # policy nor rejected by the receiver's
        return not (sent & set(got)) and not (kept and not p_out) and not (rejected and not p_in)


def audit(
    found: list[Scope], raw: dict[str, dict[str, Any]], adj: dict[str, dict[str, Any]]
) -> tuple[list[Finding], dict[str, tuple[int, ...]]]:
    """The findings of the scopes whose route is kept from the switch that misses it on every leg
    into it, and the evidence they rest on (the counters of both ends of every leg walked:
    :class:`FilterWatch` wants them unchanged). ``raw``: per switch, its default VRF's neighbors;
    ``adj``: per switch, ``get_fabric_state``'s ``"adj"``."""
    findings: set[Finding] = set()
    evidence: dict[str, tuple[int, ...]] = {}
    for sc in found:
        walk = _Walk(sc, raw, adj, [], {})
        if walk.closed(sc.miss.switch, frozenset()) and walk.found:
            findings |= set(walk.found)
            evidence.update(walk.evidence)
    return _merge(findings), evidence


def _merge(findings: set[Finding]) -> list[Finding]:
    """One finding per leg, family, direction and policy, with the routes of all of them."""
    routes: dict[tuple[str, str, Family, Literal["in", "out"], str], set[str]] = {}
    for f in findings:
        routes.setdefault((f.sender, f.receiver, f.family, f.direction, f.policy), set()).update(f.routes)
    return sorted(Finding(*k, tuple(sorted(v))) for k, v in routes.items())


def _delivered(tx: End, rx: End, s_adj: dict[str, Any], receiver_ip: str) -> bool:
    """Every update the sender made for the receiver has reached it and been read: both ends
    Established, the sender's OutQ and its update-subgroup empty, the receiver's InQ empty, and
    as many UPDATEs received as sent."""
    settled = bool((s_adj.get("settled") or {}).get(receiver_ip))
    return tx.established and rx.established and tx.outq == 0 and rx.inq == 0 and settled and tx.sent == rx.received


class FilterWatch:
    """Feed each audit's findings; :meth:`feed` answers the reasons once the same findings came
    from two consecutive audits with the same evidence (no UPDATE sent or received, no session
    re-established, on the legs the findings rest on, between them), else []."""

    def __init__(self) -> None:
        self._last: tuple[frozenset[Finding], dict[str, tuple[int, ...]]] | None = None
        self._held = 0

    def hold(self, verdict: _V | None) -> _V | None:
        """``verdict``, or None to read once more: a ``settled`` verdict (nothing changed for the
        settle window) while a finding of the last audit waits for the next one to confirm or
        drop it (a read takes about a second under load, the window three). Twice at most."""
        if verdict is None or verdict.ended_by != "settled" or self._last is None or self._held >= 2:
            return verdict
        self._held += 1
        return None

    def reset(self) -> None:
        self._last = None

    def feed(self, found: list[Finding], evidence: dict[str, tuple[int, ...]]) -> list[str]:
        if not found:
            self._last = None
            return []
        now = (frozenset(found), dict(evidence))
        before, self._last = self._last, now
        if before is None or before != now:
            return []
        return [f.reason() for f in sorted(found)]
