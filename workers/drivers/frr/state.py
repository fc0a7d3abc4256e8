"""The Linux side of a switch as data: links, addresses, bridge ports, sysctls (pure).

The planner (:mod:`workers.drivers.frr.linux_apply`) compares two :class:`NetState`
values: what the device has (parsed here from ``ip -j -d link``, ``ip -j addr`` and
``bridge -j vlan``) and what the candidate wants (:mod:`workers.drivers.frr.linux_model`).
A :class:`Link` field left ``None`` in a desired link means "not managed"; in a link
read from a device every field is known. Everything here is JSON-serialisable, since
the checkpoint stored on the device is a :class:`NetState`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

Kind = Literal["bridge", "vxlan", "vrf", "vlan", "port", "loopback"]
Mode = Literal["vlan_aware", "traditional"]
Vlan = tuple[int, bool, bool]  # (vid, pvid, untagged)
InfoValue = str | int | bool

CREATABLE: frozenset[str] = frozenset({"bridge", "vxlan", "vrf", "vlan"})
# creation order; deletion goes the other way
RANK: dict[str, int] = {"vrf": 0, "bridge": 1, "vxlan": 2, "port": 2, "loopback": 2, "vlan": 3}
PORT_DEFAULTS: dict[str, bool] = {"learning": True, "neigh_suppress": False}


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    kind: Kind
    info: tuple[tuple[str, InfoValue], ...] = ()  # creation attributes (vxlan id, vrf table, ...)
    mtu: int | None = None
    up: bool | None = None
    mac: str | None = None
    alias: str | None = None
    master: str | None = None  # "" = no master
    addresses: tuple[str, ...] | None = None
    port: tuple[tuple[str, bool], ...] = ()  # bridge-port flags
    vlans: tuple[Vlan, ...] | None = None  # bridge VLANs (vlan-aware bridges only)
    note: str = ""  # why the driver wants it (shown in diffs)

    @property
    def info_dict(self) -> dict[str, InfoValue]:
        return dict(self.info)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["info"] = dict(self.info)
        d["port"] = dict(self.port)
        d["vlans"] = None if self.vlans is None else [list(v) for v in self.vlans]
        d["addresses"] = None if self.addresses is None else list(self.addresses)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Link:
        return cls(
            name=d["name"],
            kind=d["kind"],
            info=tuple(sorted(d.get("info", {}).items())),
            mtu=d.get("mtu"),
            up=d.get("up"),
            mac=d.get("mac"),
            alias=d.get("alias"),
            master=d.get("master"),
            addresses=None if d.get("addresses") is None else tuple(d["addresses"]),
            port=tuple(sorted(d.get("port", {}).items())),
            vlans=None if d.get("vlans") is None else tuple((int(a), bool(b), bool(c)) for a, b, c in d["vlans"]),
            note=d.get("note", ""),
        )

    def but(self, **changes: Any) -> Link:
        return replace(self, **changes)


@dataclass(slots=True)
class NetState:
    links: dict[str, Link] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"links": {n: link.to_json() for n, link in sorted(self.links.items())}, "sysctls": dict(self.sysctls)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> NetState:
        return cls({n: Link.from_json(x) for n, x in d.get("links", {}).items()}, dict(d.get("sysctls", {})))

    def subset(self, names: set[str], sysctls: set[str]) -> NetState:
        return NetState(
            {n: v for n, v in self.links.items() if n in names}, {k: v for k, v in self.sysctls.items() if k in sysctls}
        )


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the switch's kernel can do (probed once per boot by creating throw-away devices)."""

    vrf: bool
    vlan: bool  # 802.1Q devices (SVIs on a VLAN-aware bridge, sub-interfaces)
    vlan_filtering: bool  # VLAN-aware bridges
    vxlan: bool
    kernel: str = ""

    @property
    def mode(self) -> Mode:
        return "vlan_aware" if self.vlan and self.vlan_filtering else "traditional"

    @property
    def missing(self) -> list[str]:
        names = {
            "vrf": "VRF devices",
            "vlan": "802.1Q VLAN devices",
            "vlan_filtering": "VLAN-aware bridges",
            "vxlan": "VXLAN devices",
        }
        return [text for key, text in names.items() if not getattr(self, key)]

    def to_json(self) -> dict[str, Any]:
        return {
            "vrf": self.vrf,
            "vlan": self.vlan,
            "vlan_filtering": self.vlan_filtering,
            "vxlan": self.vxlan,
            "kernel": self.kernel,
            "mode": self.mode,
        }

    @classmethod
    def from_words(cls, words: str, kernel: str = "") -> Capabilities:
        have = set(words.split())
        return cls("vrf" in have, "vlan" in have, "vlan_filtering" in have, "vxlan" in have, kernel)


# -- parsing what the device reports -------------------------------------------------------

_SKIP_NETS = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128", "fe80::/10")]


def canonical_cidr(value: str) -> str:
    return str(ipaddress.ip_interface(value))


def managed_address(cidr: str) -> bool:
    """Addresses the driver manages: not loopback-range, not IPv6 link-local (the kernel's own)."""
    ip = ipaddress.ip_interface(cidr).ip
    return not any(ip.version == n.version and ip in n for n in _SKIP_NETS)


def _info(kind: str, data: dict[str, Any], entry: dict[str, Any]) -> tuple[tuple[str, InfoValue], ...]:
    if kind == "vxlan":
        out: dict[str, InfoValue] = {
            "id": int(data.get("id", 0)),
            "dstport": int(data.get("port", 0)),
            "learning": bool(data.get("learning", True)),
        }
        if data.get("local"):
            out["local"] = str(data["local"])
        return tuple(sorted(out.items()))
    if kind == "vrf":
        return (("table", int(data.get("table", 0))),)
    if kind == "bridge":
        return (("vlan_filtering", bool(data.get("vlan_filtering", 0))),)
    if kind == "vlan":
        return (("id", int(data.get("id", 0))), ("link", str(entry.get("link", ""))))
    return ()


def _vlans(entries: Any) -> dict[str, tuple[Vlan, ...]]:
    out: dict[str, tuple[Vlan, ...]] = {}
    for e in entries if isinstance(entries, list) else []:
        if not isinstance(e, dict) or "ifname" not in e:
            continue
        vl: list[Vlan] = []
        for v in e.get("vlans", []):
            flags = v.get("flags", [])
            for vid in range(int(v["vlan"]), int(v.get("vlanEnd", v["vlan"])) + 1):
                vl.append((vid, "PVID" in flags, "Egress Untagged" in flags))
        out[str(e["ifname"])] = tuple(sorted(vl))
    return out


def parse_state(links: Any, addrs: Any, vlans: Any, sysctls: dict[str, str]) -> NetState:
    """``ip -j -d link show``, ``ip -j addr show``, ``bridge -j vlan show`` -> NetState."""
    by_addr: dict[str, tuple[str, ...]] = {}
    for e in addrs if isinstance(addrs, list) else []:
        got = [
            canonical_cidr(f"{a['local']}/{a['prefixlen']}")
            for a in e.get("addr_info", [])
            if a.get("family") in ("inet", "inet6") and "local" in a
        ]
        by_addr[str(e.get("ifname"))] = tuple(sorted(a for a in got if managed_address(a)))
    vl = _vlans(vlans)
    out: dict[str, Link] = {}
    for e in links if isinstance(links, list) else []:
        name = str(e.get("ifname", ""))
        if not name:
            continue
        li = e.get("linkinfo") or {}
        ik = li.get("info_kind", "")
        kind: Kind
        if e.get("link_type") == "loopback":
            kind = "loopback"
        elif ik in CREATABLE:
            kind = ik
        else:
            kind = "port"
        port: tuple[tuple[str, bool], ...] = ()
        if li.get("info_slave_kind") == "bridge":
            sd = li.get("info_slave_data") or {}
            port = tuple(sorted((k, bool(sd.get(k, d))) for k, d in PORT_DEFAULTS.items()))
        out[name] = Link(
            name=name,
            kind=kind,
            info=_info(kind, li.get("info_data") or {}, e),
            mtu=int(e.get("mtu", 0)),
            up="UP" in e.get("flags", []),
            mac=str(e.get("address", "")).lower() or None,
            alias=str(e.get("ifalias", "")),
            master=str(e.get("master", "")),
            addresses=by_addr.get(name, ()),
            port=port,
            vlans=vl.get(name, ()),
        )
    return NetState(out, dict(sysctls))


_SYSCTL_LINE = re.compile(r"^([A-Za-z0-9_.\-/]+)\s*=\s*(.*)$")


def parse_sysctls(text: str) -> dict[str, str]:
    """``sysctl KEY ...`` output (``key = value`` lines)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _SYSCTL_LINE.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out
