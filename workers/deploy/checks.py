"""Verification of the fabric against the model: expected state, observations, checks.

Pure except :func:`observe`, which reads one switch through its napalm driver. Every
check is recorded with what was expected and what was observed:

* ``bgp``: every underlay session (one per modelled link) Established, IPv4 prefixes
  received, and the L2VPN EVPN family up on it;
* ``rib``: every loopback and VTEP of the fabric in the switch's routing table (but
  the loopbacks of spines sharing its ASN, which eBGP loop prevention keeps out);
* ``vni``: every L2 VNI of a leaf present, with exactly the VTEPs of the other leaves
  carrying that network as remote VTEPs;
* ``interface``: every modelled port up, with the modelled MTU;
* ``ping``: the far end of every p2p link answers;
* ``ping-df``: a don't-fragment ping of the full fabric MTU from the leaf's VTEP to every
  other VTEP (the underlay really carries jumbo VXLAN frames).

L3 VNIs need kernel VRFs; where the switch's kernel has none (the driver reports it) the
``l3vni`` check is recorded as not applicable, never as passed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lintas.workers.checks import Check as Check
from lintas.workers.checks import CheckName as CheckName
from lintas.workers.devices import FabricReader
from lintas.workers.model.model import InfraModel

IP_ICMP_OVERHEAD = 28


@dataclass(frozen=True, slots=True)
class Ping:
    destination: str
    source: str
    size: int
    df: bool

    @property
    def key(self) -> str:
        return f"{self.source}->{self.destination}{' df ' + str(self.size) if self.df else ''}"


@dataclass(slots=True)
class Expected:
    device: str
    peers: dict[str, str] = field(default_factory=dict)  # peer ip -> peer device
    prefixes: list[str] = field(default_factory=list)  # /32s that must be in the RIB
    vnis: dict[int, list[str]] = field(default_factory=dict)  # L2 VNI -> sorted remote VTEPs
    l3vnis: dict[int, str] = field(default_factory=dict)  # L3 VNI -> VRF
    interfaces: dict[str, int] = field(default_factory=dict)  # port -> MTU
    pings: list[Ping] = field(default_factory=list)


def _sorted_ips(ips: Iterable[str]) -> list[str]:
    return sorted(set(ips), key=ipaddress.ip_address)


def expected_state(model: InfraModel, device: str, *, pings: bool = True) -> Expected:
    dev = model.devices[device]
    exp = Expected(device)
    for link in model.links_by_device.get(device, ()):
        local, remote = link.local(device), link.remote(device)
        exp.peers[str(remote.ip.ip)] = remote.device
        exp.interfaces[local.port] = link.mtu
        if pings:
            exp.pings.append(Ping(str(remote.ip.ip), str(local.ip.ip), 56, False))
    # eBGP loop prevention: a device never accepts a path through its own ASN, so spines
    # sharing one ASN do not learn each other's loopbacks (by design, without allowas-in)
    seen = [d for d in model.devices.values() if d.name == device or d.asn != dev.asn]
    exp.prefixes = _sorted_ips([str(d.loopback) for d in seen] + [str(d.vtep) for d in seen if d.vtep])
    if dev.is_leaf:
        for host in model.hosts_by_leaf.get(device, ()):
            h = model.hosts[host]
            exp.interfaces[h.uplink.port] = model.fabric.mtu
        for net_name in model.networks_by_leaf.get(device, ()):
            net = model.networks[net_name]
            exp.vnis[net.vni] = _sorted_ips(
                str(model.devices[o].vtep) for o in net.leaves if o != device and model.devices[o].vtep is not None
            )
        for vrf in model.vrfs_of_leaf(device):
            exp.l3vnis[model.vrfs[vrf].l3_vni] = vrf
        if pings and dev.vtep is not None:
            size = model.fabric.mtu - IP_ICMP_OVERHEAD
            for other in sorted(model.leaves, key=lambda d: d.name):
                if other.name != device and other.vtep is not None:
                    exp.pings.append(Ping(str(other.vtep), str(dev.vtep), size, True))
    return exp


@dataclass(slots=True)
class Observed:
    bgp: dict[str, dict[str, Any]]
    routes: dict[str, dict[str, Any]]
    vnis: dict[int, dict[str, Any]]
    interfaces: dict[str, dict[str, Any]]
    kernel: dict[str, Any]
    pings: dict[str, dict[str, Any]] = field(default_factory=dict)


def observe(driver: FabricReader, exp: Expected, *, with_pings: bool) -> Observed:
    """Read everything the checks need from one switch (blocking: several SSH execs)."""
    obs = Observed(
        bgp=driver.get_bgp_neighbors(),
        routes=driver.get_ipv4_routes(),
        vnis=driver.get_evpn_vnis() if exp.vnis or exp.l3vnis else {},
        interfaces=driver.get_interfaces(),
        kernel=driver.get_kernel_facts(),
    )
    if with_pings:
        for p in exp.pings:
            if p.df:
                obs.pings[p.key] = driver.ping_df(p.destination, source=p.source, size=p.size, count=1)
            else:
                obs.pings[p.key] = driver.ping(p.destination, source=p.source, count=1, timeout=1)
    return obs


def _ping_ok(result: dict[str, Any]) -> tuple[bool, str]:
    if "success" not in result:
        return False, str(result.get("error", "no answer"))
    s = result["success"]
    ok = s["probes_sent"] > 0 and s["packet_loss"] < s["probes_sent"]
    return ok, f"{s['probes_sent'] - s['packet_loss']}/{s['probes_sent']} replies"


def evaluate(exp: Expected, obs: Observed, *, with_pings: bool) -> list[Check]:
    d = exp.device
    out: list[Check] = []
    peers = obs.bgp.get("global", {}).get("peers", {})
    for ip, peer in sorted(exp.peers.items()):
        p = peers.get(ip)
        if p is None:
            out.append(
                Check(
                    device=d,
                    check="bgp",
                    subject=f"{ip} ({peer})",
                    passed=False,
                    expected="Established, ipv4 + l2vpn_evpn",
                    observed="no such neighbor",
                )
            )
            continue
        afs = p.get("address_family", {})
        got = afs.get("ipv4", {}).get("received_prefixes", 0)
        ok = bool(p.get("is_up")) and got > 0 and "l2vpn_evpn" in afs
        out.append(
            Check(
                device=d,
                check="bgp",
                subject=f"{ip} ({peer})",
                passed=ok,
                expected="Established, ipv4 prefixes > 0, l2vpn_evpn",
                observed=f"{'Established' if p.get('is_up') else 'down'}, ipv4 prefixes {got}, families {sorted(afs)}",
            )
        )
    for prefix in exp.prefixes:
        key = prefix if "/" in prefix else f"{prefix}/32"
        r = obs.routes.get(key)
        ok = r is not None and r.get("selected", False)
        out.append(
            Check(
                device=d,
                check="rib",
                subject=key,
                passed=ok,
                expected="in the RIB (selected)",
                observed=f"{r['protocol']} via {', '.join(r['nexthops']) or 'connected'}" if r else "absent",
            )
        )
    for vni, remotes in sorted(exp.vnis.items()):
        v = obs.vnis.get(vni)
        have = list(v.get("remote_vteps", [])) if v else None
        out.append(
            Check(
                device=d,
                check="vni",
                subject=str(vni),
                passed=v is not None and have == remotes,
                expected={"remote_vteps": remotes},
                observed={"remote_vteps": have} if v is not None else "VNI absent",
            )
        )
    vrf_capable = bool(obs.kernel.get("capabilities", {}).get("vrf", True))
    for vni, vrf in sorted(exp.l3vnis.items()):
        if not vrf_capable:
            out.append(
                Check(
                    device=d,
                    check="l3vni",
                    subject=f"{vni} ({vrf})",
                    passed=None,
                    expected="L3 VNI up",
                    observed="kernel has no VRF devices",
                    note="not applicable: unsupported_on_this_kernel",
                )
            )
            continue
        v = obs.vnis.get(vni)
        out.append(
            Check(
                device=d,
                check="l3vni",
                subject=f"{vni} ({vrf})",
                passed=v is not None and v.get("type") == "L3",
                expected="L3 VNI present",
                observed=v.get("type") if v else "absent",
            )
        )
    for port, mtu in sorted(exp.interfaces.items()):
        i = obs.interfaces.get(port)
        ok = i is not None and bool(i.get("is_up")) and int(i.get("mtu", 0)) == mtu
        out.append(
            Check(
                device=d,
                check="interface",
                subject=port,
                passed=ok,
                expected={"up": True, "mtu": mtu},
                observed={"up": i.get("is_up"), "mtu": i.get("mtu")} if i else "absent",
            )
        )
    if with_pings:
        for p in exp.pings:
            ok, text = _ping_ok(obs.pings.get(p.key, {"error": "not run"}))
            out.append(
                Check(
                    device=d,
                    check="ping-df" if p.df else "ping",
                    subject=p.key,
                    passed=ok,
                    expected=f"reply{' with DF set at ' + str(p.size + IP_ICMP_OVERHEAD) + ' bytes' if p.df else ''}",
                    observed=text,
                )
            )
    return out


def failing(checks: Iterable[Check]) -> list[Check]:
    return [c for c in checks if c.passed is False]


def summary(checks: list[Check]) -> dict[str, int]:
    return {
        "checks": len(checks),
        "passed": sum(c.passed is True for c in checks),
        "failed": sum(c.passed is False for c in checks),
        "not_applicable": sum(c.passed is None for c in checks),
    }
