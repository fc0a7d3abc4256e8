"""Verify the fabric until the stability rule decides (:mod:`workers.deploy.settle`).

Each poll reads every switch at once, each through its one SSH session and in one exec with
one ``vtysh`` (``FrrDriver.get_fabric_state``), and evaluates the cheap state checks of
:mod:`workers.deploy.checks` on the **whole** fabric (``bgp``, ``rib``, ``vni``, ``l3vni``,
``interface``). The expensive probes (``ping`` across p2p links, ``ping-df`` at the full MTU
between VTEPs) run once the control plane passes, and only for the pairs the change can
affect (:func:`affected_pings`); all of a switch's probes run at once in one exec.

When a switch misses a modelled route while every session is Established, the next reads audit
the sessions that route travels to that switch, when one carries a policy for its family
(:mod:`workers.deploy.filters`): a route a policy keeps from it on every path ends verification
as ``deterministic``, naming the switch, the peer and the policy.

The verdict says which signal ended verification (``stable``, ``settled``,
``deterministic``, ``timeout``) and why; verify and rollback put it on the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from lintas.engine.runlog import RunLogger
from lintas.engine.settings import DeploySettings
from lintas.workers.deploy import checks as C
from lintas.workers.deploy import filters as F
from lintas.workers.deploy.fleet import Fleet, Outcome
from lintas.workers.deploy.settle import Reading, Stability, Verdict
from lintas.workers.model.model import InfraModel

POLL_S = 0.3  # pause between reads (a read of the 2x4 lab takes about as long)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one switch is checked against: the model's expectations and its ASNs."""

    expected: C.Expected
    asn: int
    peer_asns: dict[str, int]  # peer ip -> the model's ASN of that peer
    back: dict[str, str] = field(default_factory=dict)  # peer ip -> this switch's address on that link


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """One end of a modelled BGP session as its switch reports it (no secret: ``key`` is a digest of
    the configured password with a nonce of this verification, compared with the other end's only)."""

    up: bool
    state: str
    local_as: int
    remote_as: int
    notification: str = ""  # lastNotificationReason (e.g. "OPEN Message Error/Bad Peer AS")
    reset: str = ""  # lastResetDueTo (e.g. "BGP Notification send")
    key: str | None = None  # None: not read in this poll


@dataclass(slots=True)
class DeviceRead:
    checks: list[C.Check]
    digest: str
    sessions_down: int
    deterministic: list[str]
    pending: Answered | None = None  # the commit pending on the switch, read in the same exec
    sessions: dict[str, SessionEnd] = field(default_factory=dict)  # modelled peer ip -> this end
    raw: dict[str, Any] = field(default_factory=dict)  # the default VRF's neighbors as FRR reports them
    adj: dict[str, Any] = field(default_factory=dict)  # the route audit's reads, when asked (see filters)


class Answered:
    """A driver's answers read already (as part of a combined read): ``get_pending_commit()`` and,
    when read, the running config, served to the ops that take a driver (``ops.pending_commit``,
    ``ops.running_fingerprint``)."""

    def __init__(self, pending: dict[str, Any] | None, running: str | None = None) -> None:
        self._pending, self._running = pending, running

    def get_pending_commit(self) -> dict[str, Any] | None:
        return self._pending

    def get_config(self, retrieve: str = "all", full: bool = False, sanitized: bool = False) -> dict[str, str]:
        if self._running is None:
            raise LookupError("the running config was not read")
        return {"running": self._running, "startup": "", "candidate": ""}


@dataclass(slots=True)
class FabricVerification:
    checks: list[C.Check]
    verdict: Verdict
    reads: int
    probes: int  # pings run (all rounds)
    probed_for: list[str] | None  # the changed switches the probes were chosen for (None: every pair)
    elapsed_s: float
    pending: dict[str, Answered] = field(default_factory=dict)  # per switch, from the last read
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "ended_by": self.verdict.ended_by,
            "reason": self.verdict.reason,
            "quiet_s": round(self.verdict.quiet_s, 2),
            "reads": self.reads,
            "probes": self.probes,
            "probed_for": self.probed_for,
            "elapsed_s": round(self.elapsed_s, 2),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def plans(model: InfraModel, devices: list[str]) -> dict[str, Plan]:
    out = {}
    for d in devices:
        exp = C.expected_state(model, d)
        back = {str(lk.remote(d).ip.ip): str(lk.local(d).ip.ip) for lk in model.links_by_device.get(d, ())}
        out[d] = Plan(exp, model.devices[d].asn, {ip: model.devices[peer].asn for ip, peer in exp.peers.items()}, back)
    return out


def legs(plan: dict[str, Plan]) -> list[F.Leg]:
    """Both directions of every modelled session between two planned switches."""
    out = []
    for d in sorted(plan):
        for ip, peer in sorted(plan[d].expected.peers.items()):
            back = plan[d].back.get(ip)
            if peer in plan and back is not None and ip in plan[d].peer_asns:
                out.append(F.Leg(d, ip, peer, back, plan[d].peer_asns[ip]))
    return out


def origins(model: InfraModel) -> dict[str, str]:
    """What the route audit misses -> the switch that originates it: each VTEP (EVPN), each
    loopback and VTEP as a /32 (IPv4 unicast)."""
    out: dict[str, str] = {}
    for d in model.devices.values():
        out[f"{d.loopback}/32"] = d.name
        if d.vtep is not None:
            out[str(d.vtep)] = out[f"{d.vtep}/32"] = d.name
    return out


def affected_pings(model: InfraModel, device: str, pings: list[C.Ping], changed: set[str] | None) -> list[C.Ping]:
    """The probes of ``device`` whose path or ends the change can affect: every probe when the
    changed set is unknown or holds a spine (every VTEP path crosses the spines); otherwise a
    probe from or to a changed switch."""
    if changed is None or any(n in model.devices and not model.devices[n].is_leaf for n in changed):
        return list(pings)
    if device in changed:
        return list(pings)
    owner: dict[str, str] = {}
    for d in model.devices.values():
        if d.vtep is not None:
            owner[str(d.vtep)] = d.name
    for link in model.links_by_device.get(device, ()):
        owner[str(link.remote(device).ip.ip)] = link.remote(device).device
    return [p for p in pings if owner.get(p.destination) in changed]


@dataclass(slots=True)
class _Observation:
    obs: C.Observed
    summary: dict[str, Any]
    pending: Answered | None
    raw: dict[str, Any]  # the default VRF's neighbors as FRR reports them (notification, last reset)
    keys: dict[str, str] | None  # peer ip -> password digest, when asked for
    adj: dict[str, Any] = field(default_factory=dict)  # the route audit's reads, when asked for


def _observe(driver: Any, exp: C.Expected, nonce: str | None, adj: F.Reads | None) -> _Observation:
    get = getattr(driver, "get_fabric_state", None)
    if get is None:  # a driver without the one-exec read: the napalm getters, one exec each
        return _Observation(C.observe(driver, exp, with_pings=False), {}, None, {}, None)
    evpn = bool(exp.vnis or exp.l3vnis)
    extra: dict[str, Any] = {}
    if nonce is not None:
        extra["session_keys"] = nonce
    if adj is not None and adj.pairs:
        extra["adj"] = list(adj.pairs)
        if adj.prefixes:
            extra["prefixes"] = list(adj.prefixes)
    st = get(evpn=evpn, pending=True, **extra)
    raw = st.get("bgp_neighbors_raw") or {}
    return _Observation(
        C.Observed(
            bgp=st["bgp"], routes=st["routes"], vnis=st["vnis"], interfaces=st["interfaces"], kernel=st["kernel"]
        ),
        st.get("bgp_summary", {}),
        Answered(st["pending"]) if "pending" in st else None,
        raw.get("default", {}) if isinstance(raw.get("default"), dict) else {},
        st.get("session_keys"),
        st.get("adj") or {},
    )


def session_ends(
    plan: Plan, obs: C.Observed, raw: dict[str, Any], keys: dict[str, str] | None
) -> dict[str, SessionEnd]:
    """This switch's end of every modelled session it reports."""
    peers = obs.bgp.get("global", {}).get("peers", {})
    out = {}
    for ip in plan.expected.peers:
        p = peers.get(ip)
        if p is None:
            continue
        r = _raw_peer(raw, ip)
        out[ip] = SessionEnd(
            up=bool(p.get("is_up")),
            state=str(r.get("bgpState", "Established" if p.get("is_up") else "")),
            local_as=int(p.get("local_as") or 0),
            remote_as=int(p.get("remote_as") or 0),
            notification=_notification(r),
            reset=str(r.get("lastResetDueTo", "")),
            key=None if keys is None else keys.get(ip, ""),
        )
    return out


def _raw_peer(raw: dict[str, Any], ip: str) -> dict[str, Any]:
    got = raw.get(ip)
    return got if isinstance(got, dict) else {}


def session_failures(plan: dict[str, Plan], ends: dict[str, dict[str, SessionEnd]]) -> list[str]:
    """Failures of a modelled session that waiting cannot heal, seen by comparing its two ends as
    read in the same poll: each end configured for an AS the other end is not (a peer's
    NOTIFICATION "Bad Peer AS" is named with it), or the two ends configured with different TCP
    MD5 passwords (compared by digest; FRR only shows such a session in Active/Connect). A
    session is reported once, from the end that sorts first, naming both switches and the cause."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for d in sorted(ends):
        for ip, mine in sorted(ends[d].items()):
            peer = plan[d].expected.peers.get(ip)
            if mine.up or peer is None or peer not in ends or peer not in plan:
                continue
            back = plan[d].back.get(ip)
            theirs = ends[peer].get(back) if back is not None else None
            if theirs is None or theirs.up:
                continue
            pair = (min(d, peer), max(d, peer))
            if pair in seen:
                continue
            why = _session_cause(d, peer, mine, theirs)
            if why:
                seen.add(pair)
                out.append(f"{d} session to {ip} ({peer}) not Established ({mine.state or 'down'}): {why}")
    return out


def _session_cause(d: str, peer: str, mine: SessionEnd, theirs: SessionEnd) -> str:
    causes = []
    if mine.remote_as and theirs.local_as and mine.remote_as != theirs.local_as:
        causes.append(f"{d} expects AS {mine.remote_as}, {peer} speaks AS {theirs.local_as}")
    if theirs.remote_as and mine.local_as and theirs.remote_as != mine.local_as:
        causes.append(f"{peer} expects AS {theirs.remote_as}, {d} speaks AS {mine.local_as}")
    if causes:
        notes = [
            f"{n}: {e.reset or 'NOTIFICATION'} ({e.notification})" for n, e in ((d, mine), (peer, theirs)) if _bad_as(e)
        ]
        return "; ".join(causes) + (f" (the peer refused it: {'; '.join(notes)})" if notes else "")
    if mine.key is not None and theirs.key is not None and mine.key != theirs.key:
        if not mine.key or not theirs.key:
            has, hasnt = (d, peer) if mine.key else (peer, d)
            return f"{has} is configured with a TCP MD5 password for it, {hasnt} with none"
        return "the two ends are configured with different TCP MD5 passwords (compared by digest)"
    return ""


BAD_PEER_AS = "0202"  # NOTIFICATION code 2 (OPEN Message Error), subcode 2 (Bad Peer AS), as FRR shows it


def _notification(raw: dict[str, Any]) -> str:
    """The last NOTIFICATION of a session as FRR reports it (``lastNotificationReason``, or its
    code and subcode, ``lastErrorCodeSubcode``), "" when none."""
    text = str(raw.get("lastNotificationReason") or "")
    if not text and str(raw.get("lastErrorCodeSubcode") or "") == BAD_PEER_AS:
        text = "OPEN Message Error/Bad Peer AS"
    return text


def _bad_as_text(notification: str) -> bool:
    return "bad peer as" in notification.lower()


def _bad_as(end: SessionEnd) -> bool:
    return _bad_as_text(end.notification)


def digest(obs: C.Observed, summary: dict[str, Any]) -> str:
    """The control-plane state the stability rule watches (no uptimes, timers or counters of traffic)."""
    peers = {
        vrf: {
            ip: [
                p.get("is_up"),
                sorted(
                    (af, v.get("received_prefixes"), v.get("sent_prefixes"))
                    for af, v in p.get("address_family", {}).items()
                ),
            ]
            for ip, p in body.get("peers", {}).items()
        }
        for vrf, body in obs.bgp.items()
    }
    versions = {
        vrf: {af: b.get("tableVersion") for af, b in body.items() if isinstance(b, dict)}
        for vrf, body in summary.items()
        if isinstance(body, dict)
    }
    evpn = {
        vrf: {
            af: {ip: p.get("pfxRcd") for ip, p in (b.get("peers") or {}).items() if isinstance(p, dict)}
            for af, b in body.items()
            if isinstance(b, dict) and af == "l2VpnEvpn"
        }
        for vrf, body in summary.items()
        if isinstance(body, dict)
    }
    vnis = {str(k): [v.get("type"), v.get("state"), v.get("remote_vteps")] for k, v in obs.vnis.items()}
    ports = {k: [v.get("is_up"), v.get("mtu")] for k, v in obs.interfaces.items()}
    text = json.dumps([peers, versions, evpn, obs.routes, vnis, ports], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def deterministic(plan: Plan, obs: C.Observed, raw: dict[str, Any] | None = None) -> list[str]:
    """Failures that waiting cannot heal, on one switch: configuration facts, not transient state
    (a port up at another MTU than the model's; a session configured with another local or remote
    AS than the model's, with the peer's NOTIFICATION when it sent one). ``raw``: the default VRF's
    neighbors as FRR reports them. What needs both ends of a session is :func:`session_failures`."""
    exp, d = plan.expected, plan.expected.device
    out = []
    for port, mtu in sorted(exp.interfaces.items()):
        i = obs.interfaces.get(port)
        if i is not None and i.get("is_up") and int(i.get("mtu", 0)) not in (0, mtu):
            out.append(f"{d} {port}: up at MTU {i.get('mtu')}, the model says {mtu}")
    peers = obs.bgp.get("global", {}).get("peers", {})
    for ip, peer in sorted(exp.peers.items()):
        p = peers.get(ip)
        if p is None or p.get("is_up"):
            continue
        want = plan.peer_asns.get(ip)
        refused = ""
        r = _raw_peer(raw or {}, ip)
        if _bad_as_text(_notification(r)):
            refused = f" ({r.get('lastResetDueTo') or 'NOTIFICATION'}: {_notification(r)})"
        if p.get("remote_as") and want is not None and p["remote_as"] != want:
            out.append(
                f"{d} session to {ip} ({peer}) not Established: configured with remote AS "
                f"{p['remote_as']}, the model says {want}{refused}"
            )
        if p.get("local_as") and p["local_as"] != plan.asn:
            out.append(
                f"{d} session to {ip} ({peer}) not Established: local AS {p['local_as']}, "
                f"the model says {plan.asn}{refused}"
            )
    return out


def read_device(
    driver: Any,
    name: str,
    *,
    plan: dict[str, Plan],
    keys: tuple[str, frozenset[str]] | None = None,
    audit: dict[str, F.Reads] | None = None,
) -> DeviceRead:
    """One switch: one exec, cheap checks, digest, sessions down, deterministic failures.
    ``keys``: (nonce, switches) to read the password digests of (see ``get_fabric_state``);
    ``audit``: per switch, the reads of the route audit (:mod:`filters`)."""
    p = plan[name]
    got = _observe(
        driver, p.expected, keys[0] if keys is not None and name in keys[1] else None, (audit or {}).get(name)
    )
    obs = got.obs
    checks = C.evaluate(p.expected, obs, with_pings=False)
    peers = obs.bgp.get("global", {}).get("peers", {})
    down = sum(1 for ip in p.expected.peers if not (peers.get(ip) or {}).get("is_up"))
    return DeviceRead(
        checks,
        digest(obs, got.summary),
        down,
        deterministic(p, obs, got.raw),
        got.pending,
        session_ends(p, obs, got.raw, got.keys),
        got.raw,
        got.adj,
    )


def probe_device(driver: Any, name: str, *, probes: dict[str, list[C.Ping]]) -> list[C.Check]:
    """The switch's probes, at once in one exec where the driver can (``ping_many``)."""
    pings = probes[name]
    many = getattr(driver, "ping_many", None)
    if many is not None:
        results = many([{"destination": p.destination, "source": p.source, "size": p.size, "df": p.df} for p in pings])
    else:
        results = [
            driver.ping_df(p.destination, source=p.source, size=p.size, count=1)
            if p.df
            else driver.ping(p.destination, source=p.source, count=1, timeout=1)
            for p in pings
        ]
    exp = C.Expected(name, pings=pings)
    obs = C.Observed(
        bgp={},
        routes={},
        vnis={},
        interfaces={},
        kernel={},
        pings={p.key: r for p, r in zip(pings, results, strict=True)},
    )
    return [c for c in C.evaluate(exp, obs, with_pings=True) if c.check in ("ping", "ping-df")]


def _down_ends(plan: dict[str, Plan], ends: dict[str, dict[str, SessionEnd]]) -> set[str]:
    """Both switches of every modelled session one of its ends reports down."""
    out: set[str] = set()
    for d, mine in ends.items():
        for ip, end in mine.items():
            peer = plan[d].expected.peers.get(ip)
            if not end.up and peer is not None:
                out |= {d, peer}
    return out & set(plan)


async def why_down(fleet: Fleet, model: InfraModel, devices: list[str], among: set[str]) -> list[str]:
    """What waiting cannot heal about the sessions of ``devices`` (a wave the health gate waits
    for) to their peers in ``among`` (the switches configured already): each of them and those
    peers read once (one exec each, the password digests with a fresh nonce), then
    :func:`deterministic` of ``devices`` and :func:`session_failures` of those sessions. [] when
    nothing is known to be wrong (a session may still come up)."""
    wave = set(devices)
    peers = {lk.remote(n).device for n in wave & set(model.devices) for lk in model.links_by_device.get(n, ())}
    names = sorted(n for n in (wave & set(model.devices)) | (peers & among) if n in fleet.conns)
    plan = plans(model, names)
    got = await fleet.run(names, read_device, plan=plan, keys=(secrets.token_hex(16), frozenset(names)))
    reads = {n: r.value for n, r in got.items() if r.ok and r.value is not None}
    out = [msg for n in sorted(reads) if n in wave for msg in reads[n].deterministic]

    def gated(d: str, ip: str) -> bool:
        peer = plan[d].expected.peers.get(ip)
        return (d in wave and (peer in among or peer in wave)) or (peer in wave and d in among)

    ends = {d: {ip: e for ip, e in r.sessions.items() if gated(d, ip)} for d, r in reads.items()}
    return out + session_failures(plan, ends)


@dataclass(frozen=True)
class Settling:
    """How one verification settles: its name in the run's log (``verify``, ``re-verify ...``), its
    upper bound, the stability rule's windows and the pause between reads."""

    label: str
    timeout_s: float
    quiet_s: float = 1.0
    settle_s: float = 3.0
    poll_s: float = POLL_S

    @classmethod
    def of(cls, label: str, deploy: DeploySettings) -> Settling:
        """The windows as configured (``LINTAS_DEPLOY__VERIFY_TIMEOUT_S``, ``__VERIFY_QUIET_S``,
        ``__VERIFY_SETTLE_S``, ``__VERIFY_POLL_S``; the settings validate their order)."""
        return cls(label, deploy.verify_timeout_s, deploy.verify_quiet_s, deploy.verify_settle_s, deploy.verify_poll_s)


async def verify_fabric(
    fleet: Fleet,
    model: InfraModel,
    devices: list[str],
    *,
    log: RunLogger,
    settling: Settling,
    changed: set[str] | None = None,
) -> FabricVerification:
    """Read the whole fabric until :class:`~workers.deploy.settle.Stability` decides; probe the
    affected pairs once the control plane passes (again when its state changed, or once more
    when a probe failed). Returns the last checks, cheap and probes, and the verdict."""
    t0 = time.monotonic()
    if not devices:
        return FabricVerification(
            [],
            Verdict(True, "stable", "no switch to verify", 0.0),
            0,
            0,
            sorted(changed) if changed is not None else None,
            0.0,
        )
    plan = plans(model, devices)
    probes = {d: affected_pings(model, d, plan[d].expected.pings, changed) for d in devices}
    probes = {d: ps for d, ps in probes.items() if ps}
    rule = Stability(started=t0, timeout_s=settling.timeout_s, quiet_s=settling.quiet_s, settle_s=settling.settle_s)
    probed_at: str | None = None  # the fabric digest the last probes ran at
    probe_checks: list[C.Check] = []
    probe_runs = probe_count = 0
    logged = 0.0
    timings: dict[str, float] = {"reads": 0.0, "probes": 0.0}
    last_read_s = 0.0
    # the password digests are read (with a nonce of this verification only) of both ends of every
    # session the read before found down: a wrong password leaves FRR in Active/Connect, nothing more
    nonce, keyed = secrets.token_hex(16), frozenset[str]()
    # the route audit (workers/deploy/filters.py): when a switch misses a modelled route while
    # every session is Established, the next reads also give, of the sessions that route travels
    # to that switch (one with a policy for its family), the sender's adj-RIB-out and best routes
    # and what the receiver holds from it
    lgs, audit, watch = legs(plan), dict[str, F.Reads](), F.FilterWatch()
    owners, scoped = origins(model), list[F.Scope]()

    async def read_all(delay: float = 0.0) -> tuple[dict[str, Outcome[DeviceRead]], float]:
        nonlocal last_read_s
        if delay > 0:
            await asyncio.sleep(delay)
        t_read = time.monotonic()
        got = await fleet.run(
            devices, read_device, plan=plan, keys=(nonce, keyed) if keyed else None, audit=audit or None
        )
        end = time.monotonic()
        last_read_s = end - t_read
        timings["first_read"] = timings.get("first_read", last_read_s)
        timings["reads"] += last_read_s
        return got, end

    ahead: tuple[dict[str, Outcome[DeviceRead]], float] | None = None  # a read taken beside the probes
    while True:
        results, now = ahead if ahead is not None else await read_all()
        ahead = None
        cheap: list[C.Check] = []
        digests: dict[str, str] = {}
        down, det = 0, []
        for name in sorted(devices):
            r = results[name]
            if r.ok and r.value is not None:
                cheap += r.value.checks
                digests[name], down = r.value.digest, down + r.value.sessions_down
                det += r.value.deterministic
            else:
                cheap.append(
                    C.Check(
                        device=name,
                        check="reachable",
                        subject=fleet.conns[name].hostname,
                        passed=False,
                        expected="SSH session and answers",
                        observed=r.error,
                    )
                )
                digests[name], down = f"unreachable: {r.error}", down + 1
        ends = {n: r.value.sessions for n, r in results.items() if r.ok and r.value is not None}
        det += session_failures(plan, ends)
        keyed = frozenset(_down_ends(plan, ends))
        raws = {n: r.value.raw for n, r in results.items() if r.ok and r.value is not None}
        adjs = {n: r.value.adj for n, r in results.items() if r.ok and r.value is not None and r.value.adj}
        misses = F.missing(cheap) if down == 0 else set[F.Miss]()
        still = [sc for sc in scoped if sc.miss in misses]  # audited by this read, still missed by it
        if adjs and still:
            det += watch.feed(*F.audit(still, raws, adjs))
        else:
            watch.reset()
        scoped = F.scopes(lgs, raws, misses, owners)
        audit = F.audit_plan(scoped)
        fabric = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()
        probed = False
        if not C.failing(cheap) and probes and (probed_at != fabric or (C.failing(probe_checks) and probe_runs < 2)):
            # the control plane passes: probe the data plane now (it takes part of the quiet window)
            probe_runs = probe_runs + 1 if probed_at == fabric else 1
            t_probe = time.monotonic()

            async def probe_all(started: float = t_probe) -> dict[str, Outcome[list[C.Check]]]:
                got = await fleet.run(sorted(probes), probe_device, probes=probes)
                timings["probes"] += time.monotonic() - started
                return got

            # the next read runs beside the probes, timed to end about when the quiet window does
            # (both over the switches' open sessions: every session was opened by the read before)
            delay = min(max(0.05, settling.quiet_s - last_read_s + 0.05), max(0.0, rule.deadline - time.monotonic()))
            got, ahead = await asyncio.gather(probe_all(), read_all(delay))
            probe_checks = []
            for name in sorted(probes):
                g = got[name]
                probe_checks += (
                    g.value
                    if g.ok and g.value is not None
                    else [
                        C.Check(
                            device=name,
                            check="ping",
                            subject=f"{len(probes[name])} probe(s)",
                            passed=False,
                            expected="replies",
                            observed=g.error,
                        )
                    ]
                )
            probe_count += sum(len(ps) for ps in probes.values())
            probed_at, probed = fabric, True
        failing = len(C.failing(cheap)) + (len(C.failing(probe_checks)) if probed_at == fabric else 0)
        verdict = rule.feed(Reading(now, digests, failing, down, det))
        verdict = watch.hold(verdict)  # "settled" with a finding the next audit confirms or drops: read again
        if verdict is not None:
            checks = cheap + (probe_checks if probed_at == fabric else [])
            pending = {
                n: r.value.pending
                for n, r in results.items()
                if r.ok and r.value is not None and r.value.pending is not None
            }
            out = FabricVerification(
                checks,
                verdict,
                rule.readings,
                probe_count,
                sorted(changed) if changed is not None else None,
                time.monotonic() - t0,
                pending,
                timings,
            )
            s = C.summary(checks)
            await log.info(
                f"{settling.label}: {s['passed']}/{s['checks']} checks passed; ended by {verdict.ended_by}: "
                f"{verdict.reason}; {probe_count} probe(s)"
                + (f", {s['not_applicable']} not applicable on this kernel" if s["not_applicable"] else "")
            )
            return out
        if now - logged >= 5.0:
            logged = now
            bad = C.failing(cheap) or C.failing(probe_checks)
            if bad:
                c = bad[0]
                await log.info(
                    f"{settling.label}: waiting for the fabric to settle, {len(bad)} check(s) failing (e.g. "
                    f"{c.device} {c.check} {c.subject}: observed {c.observed}); quiet for "
                    f"{rule.quiet_for(now):.1f} s, {max(0.0, rule.deadline - now):.0f} s left"
                )
        if not probed:  # a probe round took longer than a pause already
            await asyncio.sleep(min(settling.poll_s, max(0.0, rule.deadline - time.monotonic())))
