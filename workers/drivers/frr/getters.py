"""Normalise what a switch reports (iproute2 and vtysh JSON) into napalm's structures (pure).

napalm getters: ``get_facts``, ``get_interfaces``, ``get_interfaces_ip``,
``get_bgp_neighbors``. EVPN getters for verification (not in napalm's base):

* ``get_evpn_peers()``: ``{peer: {"vrf", "state", "is_up", "remote_as", "local_as",
  "description", "hostname", "uptime", "prefixes_received", "prefixes_sent"}}`` from the
  ``l2VpnEvpn`` sessions of ``show bgp vrf all summary json``;
* ``get_evpn_vnis()``: ``{vni: {"type": "L2"|"L3", "vxlan_interface", "svi", "bridge",
  "vlan", "vrf", "state", "local_vtep", "remote_vteps": [sorted], "num_macs"}}`` from
  ``show evpn vni json`` + ``show evpn vni detail json`` + the kernel's links (``vlan``:
  the VXLAN port's PVID on a VLAN-aware bridge, else the VLAN the last commit mapped);
* ``get_evpn_macs(vni)``: ``{mac: {"type": "local"|"remote", "interface", "remote_vtep",
  "vlan"}}`` from ``show evpn mac vni VNI json``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

AF_NAMES = {
    "ipv4Unicast": "ipv4",
    "ipv6Unicast": "ipv6",
    "l2VpnEvpn": "l2vpn_evpn",
    "ipv4Multicast": "ipv4_multicast",
    "ipv6Multicast": "ipv6_multicast",
    "ipv4Vpn": "ipv4_vpn",
    "ipv6Vpn": "ipv6_vpn",
}


def af_name(frr: str) -> str:
    return AF_NAMES.get(frr) or re.sub(r"(?<!^)([A-Z])", r"_\1", frr).lower()


def vrf_key(name: str) -> str:
    return "global" if name == "default" else name


def facts(
    *,
    hostname: str,
    fqdn: str,
    version_text: str,
    kernel: str,
    uptime_text: str,
    links: list[dict[str, Any]],
    serial: str = "",
) -> dict[str, Any]:
    first = version_text.strip().splitlines()[0] if version_text.strip() else ""
    m = re.search(r"FRRouting\s+(\S+)", first)
    frr = m.group(1) if m else "unknown"
    try:
        uptime = float(uptime_text.split()[0])
    except (IndexError, ValueError):
        uptime = -1.0
    return {
        "hostname": hostname,
        "fqdn": fqdn or hostname,
        "vendor": "FRRouting",
        "model": "Linux+FRR",
        "os_version": f"FRRouting {frr} / Linux {kernel}".strip(),
        "serial_number": serial,
        "uptime": uptime,
        "interface_list": sorted((str(e["ifname"]) for e in links if "ifname" in e), key=_natural),
    }


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _is_up(entry: dict[str, Any]) -> bool:
    state = entry.get("operstate", "")
    flags = entry.get("flags", [])
    return state == "UP" or (state == "UNKNOWN" and "LOWER_UP" in flags and "UP" in flags)


def interfaces(links: list[dict[str, Any]], speeds: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
    speeds = speeds or {}
    out: dict[str, dict[str, Any]] = {}
    for e in links:
        name = str(e.get("ifname", ""))
        if not name:
            continue
        speed = speeds.get(name, -1)
        out[name] = {
            "is_up": _is_up(e),
            "is_enabled": "UP" in e.get("flags", []),
            "description": str(e.get("ifalias", "")),
            "last_flapped": -1.0,
            "mtu": int(e.get("mtu", 0)),
            "speed": float(speed if speed and speed > 0 else -1),
            "mac_address": str(e.get("address", "")),
        }
    return out


def interfaces_ip(addrs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
    out: dict[str, dict[str, dict[str, dict[str, int]]]] = {}
    for e in addrs:
        for a in e.get("addr_info", []):
            fam = {"inet": "ipv4", "inet6": "ipv6"}.get(a.get("family", ""))
            if fam is None or "local" not in a:
                continue
            ip = str(ipaddress.ip_address(a["local"]))
            out.setdefault(str(e["ifname"]), {}).setdefault(fam, {})[ip] = {"prefix_length": int(a["prefixlen"])}
    return out


def bgp_neighbors(neighbors: dict[str, Any], summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``show bgp vrf all neighbors json`` + ``show bgp vrf all summary json`` -> napalm's structure."""
    out: dict[str, dict[str, Any]] = {}
    for vrf, body in summary.items():
        if not isinstance(body, dict):
            continue
        rid = next((str(af.get("routerId", "")) for af in body.values() if isinstance(af, dict)), "")
        out[vrf_key(vrf)] = {"router_id": rid, "peers": {}}
    for vrf, peers in neighbors.items():
        if not isinstance(peers, dict):
            continue
        entry = out.setdefault(vrf_key(vrf), {"router_id": "", "peers": {}})
        for addr, p in peers.items():
            if not isinstance(p, dict) or "bgpState" not in p:
                continue  # vrfId, vrfName
            state = str(p.get("bgpState", ""))
            up = state == "Established"
            afs = {}
            for af, info in (p.get("addressFamilyInfo") or {}).items():
                if isinstance(info, dict):
                    got = int(info.get("acceptedPrefixCounter", 0))
                    afs[af_name(af)] = {
                        "received_prefixes": got,
                        "accepted_prefixes": got,
                        "sent_prefixes": int(info.get("sentPrefixCounter", 0)),
                    }
            entry["router_id"] = entry["router_id"] or str(p.get("localRouterId", ""))
            entry["peers"][addr] = {
                "local_as": int(p.get("localAs", 0)),
                "remote_as": int(p.get("remoteAs", 0)),
                "remote_id": str(p.get("remoteRouterId", "")),
                "is_up": up,
                "is_enabled": not (p.get("adminShutDown") or "Admin" in state),
                "description": str(p.get("nbrDesc", "")),
                "uptime": int(p.get("bgpTimerUpMsec", 0)) // 1000 if up else -1,
                "address_family": afs,
            }
    return out


def evpn_peers(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for vrf, body in summary.items():
        evpn = body.get("l2VpnEvpn") if isinstance(body, dict) else None
        if not isinstance(evpn, dict):
            continue
        for peer, p in (evpn.get("peers") or {}).items():
            state = str(p.get("state", ""))
            out[peer] = {
                "vrf": vrf_key(vrf),
                "state": state,
                "is_up": state == "Established",
                "remote_as": int(p.get("remoteAs", 0)),
                "local_as": int(p.get("localAs", 0)),
                "description": str(p.get("desc", "")),
                "hostname": str(p.get("hostname", "")),
                "uptime": int(p.get("peerUptimeMsec", 0)) // 1000,
                "prefixes_received": int(p.get("pfxRcd", 0)),
                "prefixes_sent": int(p.get("pfxSnt", 0)),
            }
    return out


def evpn_vnis(
    vnis: dict[str, Any],
    detail: list[dict[str, Any]] | dict[str, Any],
    links: list[dict[str, Any]],
    modelled_vlans: dict[str, int] | None = None,
) -> dict[int, dict[str, Any]]:
    """``modelled_vlans`` ({"VNI": VLAN} of the last commit) names the VLAN where the kernel has none
    (traditional bridges carry a VNI untagged: its VLAN exists only on the host ports)."""
    modelled_vlans = modelled_vlans or {}
    by_name = {str(e.get("ifname")): e for e in links}
    details = detail if isinstance(detail, list) else list(detail.values()) if isinstance(detail, dict) else []
    det = {int(d["vni"]): d for d in details if isinstance(d, dict) and "vni" in d}
    out: dict[int, dict[str, Any]] = {}
    for key, v in vnis.items():
        if not isinstance(v, dict):
            continue
        vni = int(v.get("vni", key))
        d = det.get(vni, {})
        kind = str(v.get("type", d.get("type", "L2")))
        vx = str(v.get("vxlanIf") or d.get("vxlanInterface") or d.get("vxlanIntf") or "")
        vx = "" if vx == "None" else vx
        link = by_name.get(vx, {})
        remote = v.get("remoteVteps")
        if not isinstance(remote, list):
            alt = d.get("numRemoteVteps")
            remote = alt if isinstance(alt, list) else []
        svi = str(d.get("sviInterface") or d.get("sviIntf") or "")
        out[vni] = {
            "type": "L3" if kind == "L3" else "L2",
            "vxlan_interface": vx or None,
            "svi": None if svi in ("", "None") else svi,
            "bridge": link.get("master") or None,
            "vlan": _vxlan_vlan(link) or modelled_vlans.get(str(vni)),
            "vrf": str(v.get("tenantVrf") or d.get("vrf") or ""),
            "state": str(d.get("state", "Up" if vx else "Down")),
            "local_vtep": str(d.get("vtepIp") or d.get("localVtepIp") or "") or None,
            "remote_vteps": sorted({str(x) for x in remote}, key=ipaddress.ip_address),
            "num_macs": int(v.get("numMacs", 0)) if str(v.get("numMacs", "0")).isdigit() else 0,
        }
    return out


def _vxlan_vlan(link: dict[str, Any]) -> int | None:
    vid = link.get("_pvid")
    return int(vid) if isinstance(vid, int) else None


def with_pvids(links: list[dict[str, Any]], vlans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Annotate links with their bridge PVID (``_pvid``) from ``bridge -j vlan show``."""
    pvid = {}
    for e in vlans if isinstance(vlans, list) else []:
        for v in e.get("vlans", []):
            if "PVID" in v.get("flags", []):
                pvid[str(e.get("ifname"))] = int(v["vlan"])
    return [{**e, "_pvid": pvid.get(str(e.get("ifname")))} for e in links]


def evpn_macs(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    macs = data.get("macs", data) if isinstance(data, dict) else {}
    out: dict[str, dict[str, Any]] = {}
    for mac, m in (macs or {}).items():
        if not isinstance(m, dict):
            continue
        out[str(mac).lower()] = {
            "type": str(m.get("type", "")),
            "interface": m.get("intf"),
            "remote_vtep": m.get("remoteVtep"),
            "vlan": m.get("vlan"),
        }
    return out


_PING_SENT = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_PING_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")
_PING_REPLY = re.compile(r"bytes from ([0-9a-fA-F.:]*[0-9a-fA-F]):? .*time=([\d.]+) ms")


def ping_result(output: str, returncode: int) -> dict[str, Any]:
    """iputils ``ping`` output -> napalm's ``PingResultDict`` (``{"success": ...}`` or ``{"error": ...}``)."""
    sent = _PING_SENT.search(output)
    if sent is None:
        last = output.strip().splitlines()[-1:] or [f"ping exited {returncode}"]
        return {"error": last[0][:300]}
    probes, received = int(sent.group(1)), int(sent.group(2))
    rtt = _PING_RTT.search(output)
    lo, avg, hi, dev = (float(x) for x in rtt.groups()) if rtt else (0.0, 0.0, 0.0, 0.0)
    replies = [{"ip_address": m.group(1), "rtt": float(m.group(2))} for m in _PING_REPLY.finditer(output)]
    return {
        "success": {
            "probes_sent": probes,
            "packet_loss": probes - received,
            "rtt_min": lo,
            "rtt_max": hi,
            "rtt_avg": avg,
            "rtt_stddev": dev,
            "results": replies,
        }
    }


def ipv4_routes(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``show ip route json`` -> ``{prefix: {"protocol", "selected", "installed", "nexthops": [ip, ...]}}``."""
    out: dict[str, dict[str, Any]] = {}
    for prefix, entries in table.items():
        if not isinstance(entries, list):
            continue
        best = next((e for e in entries if isinstance(e, dict) and e.get("selected")), None)
        entry = best or next((e for e in entries if isinstance(e, dict)), {})
        hops = [
            str(h.get("ip") or h.get("interfaceName") or "")
            for h in entry.get("nexthops", [])
            if isinstance(h, dict) and (h.get("active") or h.get("fib"))
        ]
        out[prefix] = {
            "protocol": str(entry.get("protocol", "")),
            "selected": bool(entry.get("selected")),
            "installed": bool(entry.get("installed")),
            "nexthops": sorted(h for h in hops if h),
        }
    return out


# -- adj-RIB-out, routes from a neighbor, the local table (the route audit of verification) ----------

ADJ_FAMILIES = {"ipv4": "ipv4 unicast", "evpn": "l2vpn evpn"}  # a family of the audit -> FRR's words


def _evpn_entries(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"<rd> <prefix>": entry}`` of an EVPN table as FRR prints it (RDs at the top, metadata beside)."""
    out: dict[str, dict[str, Any]] = {}
    for rd, body in doc.items():
        if not isinstance(body, dict) or "rd" not in body:
            continue
        for prefix, entry in body.items():
            if prefix.startswith("[") and isinstance(entry, dict):
                out[f"{rd} {prefix}"] = entry
    return out


def _paths(entry: Any) -> list[dict[str, Any]]:
    """An entry's paths: a list of paths, or of lists of paths (``route type ... json``)."""
    paths = entry.get("paths", []) if isinstance(entry, dict) else entry
    out: list[dict[str, Any]] = []
    for p in paths if isinstance(paths, list) else []:
        out += [q for q in p if isinstance(q, dict)] if isinstance(p, list) else [p] if isinstance(p, dict) else []
    return out


def advertised_routes(family: str, doc: dict[str, Any]) -> dict[str, str]:
    """``show bgp <family> neighbors X advertised-routes json`` (the adj-RIB-out, after the outbound
    policy): ``{route key: AS path as stored}`` (the sender's own AS is prepended on the wire only)."""
    adv = doc.get("advertisedRoutes", {}) if isinstance(doc, dict) else {}
    if not isinstance(adv, dict):
        return {}
    if family == "evpn":
        return {k: str(e.get("path", "")) for k, e in _evpn_entries(adv).items()}
    return {k: str(e.get("path", "")) for k, e in adv.items() if isinstance(e, dict)}


def neighbor_routes(family: str, doc: dict[str, Any]) -> list[str]:
    """``show bgp <family> neighbors X routes json`` (what the switch holds from X, after its inbound
    policy): the sorted route keys."""
    if not isinstance(doc, dict):
        return []
    if family == "evpn":
        return sorted(_evpn_entries(doc))
    routes = doc.get("routes", {})
    return sorted(routes) if isinstance(routes, dict) else []


def best_routes(family: str, doc: dict[str, Any]) -> dict[str, str]:
    """The local table (``show bgp ipv4 unicast json``; for EVPN ``show bgp l2vpn evpn route type
    multicast json``): ``{route key: AS path of the best path}``."""
    if not isinstance(doc, dict):
        return {}
    entries: dict[str, Any] = _evpn_entries(doc) if family == "evpn" else doc.get("routes", {})
    out = {}
    for key, entry in (entries if isinstance(entries, dict) else {}).items():
        best = [p for p in _paths(entry) if p.get("bestpath") and p.get("valid", True)]
        if best:
            out[key] = str(best[0].get("path", ""))
    return out


def prefix_entry(doc: dict[str, Any]) -> tuple[str | None, list[str], list[str]]:
    """``show bgp ipv4 unicast <prefix> json``: the AS path of the best path (None without one),
    the peers the prefix is advertised to (``advertisedTo``: the adj-RIB-out) and the peers a
    valid path came from (what the switch holds from whom, after its inbound policy)."""
    if not isinstance(doc, dict):
        return None, [], []
    best: str | None = None
    peers: set[str] = set()
    for p in _paths(doc):
        if not p.get("valid", True):
            continue
        aspath = p.get("aspath")
        path = str(aspath.get("string", "")) if isinstance(aspath, dict) else str(p.get("path", ""))
        path = "" if path == "Local" else path
        mark = p.get("bestpath")
        if best is None and (mark.get("overall") if isinstance(mark, dict) else mark):
            best = path
        peer = p.get("peer")
        pid = peer.get("peerId") if isinstance(peer, dict) else p.get("peerId")
        if isinstance(pid, str) and pid and pid != "(unspec)":
            peers.add(pid)
    to = doc.get("advertisedTo")
    return best, sorted(to) if isinstance(to, dict) else [], sorted(peers)


def update_groups(text: str) -> dict[str, bool]:
    """``show bgp <family> update-groups`` (text only in FRR 8.4): ``{peer: settled}``, where a
    peer's update-subgroup is settled when nothing waits to be sent to it: no coalesce timer
    running (a new subgroup announces its table only when it fires), an empty advertise list and
    an empty packet queue."""
    out: dict[str, bool] = {}
    for block in re.split(r"^\s*Update-subgroup \d+:\s*$", text, flags=re.M)[1:]:
        m = re.search(r"^\s*Coalesce Time: \d+(\(Running\))?\s*$", block, re.M)
        q = re.search(r"^\s*Packet queue length: (\d+)\s*$", block, re.M)
        a = re.search(r"^\s*Advertise list: (empty|not empty)\s*$", block, re.M)
        settled = m is not None and not m.group(1) and q is not None and q.group(1) == "0"
        settled = settled and a is not None and a.group(1) == "empty"
        peers = block.split("Peers:", 1)[1] if "Peers:" in block else ""
        for line in peers.splitlines():
            word = line.strip()
            if not word.startswith("- "):
                if word:
                    break
                continue
            out[word[2:].split()[0]] = settled
    return out
