"""What ``linux.json`` asks of a switch's kernel, for the kernel it has (pure).

Two kernel modes, chosen from the probed :class:`~workers.drivers.frr.state.Capabilities`:

* ``vlan_aware`` (VLAN-aware bridges and 802.1Q devices available): ``linux.json``
  exactly as designed (:mod:`workers.drivers.frr.linux_schema`): one ``vlan_filtering``
  bridge, one VXLAN device per VNI as a bridge port with its VLAN as PVID, host ports
  with PVID + tagged VLANs, SVIs ``vlanNN`` on the bridge enslaved to their VRF.
* ``traditional`` (no VLAN-aware bridge or no 802.1Q: the classic Cumulus/FRR EVPN
  design): **one plain bridge per VNI**, ``br<VNI>``, holding that VNI's VXLAN device
  and the host ports whose PVID is the VNI's VLAN (untagged). The SVI is the bridge
  itself: the anycast gateway address and MAC go on ``br<VNI>``. zebra learns each
  L2 VNI from the VXLAN device's bridge in this mode too.

Whatever cannot be built is recorded, never dropped silently:

* ``unsupported``: what this kernel cannot carry at all (host ports' tagged VLANs
  without 802.1Q; VRFs without VRF devices, so tenant routes stay in the main table;
  L3 VNIs without a VRF to bind them to);
* ``adaptations``: what is built differently from ``linux.json`` (SVI ``vlan10`` is
  bridge ``br10010``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lintas.workers.drivers.frr.linux_schema import LinuxSpec, Port, Svi, Vxlan
from lintas.workers.drivers.frr.state import Capabilities, Link, Mode

TRADITIONAL_BRIDGE_PREFIX = "br"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_alias(text: str) -> str:
    """An interface alias: one line, at most 255 bytes (IFALIASZ - 1)."""
    return _CONTROL.sub(" ", text).encode()[:255].decode(errors="ignore")


@dataclass(slots=True)
class Desired:
    mode: Mode
    links: dict[str, Link]
    sysctls: dict[str, str]
    unsupported: list[str] = field(default_factory=list)
    adaptations: list[str] = field(default_factory=list)
    mgmt_interface: str = "eth0"
    mgmt_address: str = ""


def bridge_name(vni: int) -> str:
    """``br<VNI>``: at most 10 characters (VNIs have up to 8 digits)."""
    return f"{TRADITIONAL_BRIDGE_PREFIX}{vni}"


def _vxlan_info(vx: Vxlan) -> tuple[tuple[str, str | int | bool], ...]:
    info: dict[str, str | int | bool] = {
        "id": vx.vni,
        "local": vx.local_ip,
        "dstport": vx.dstport,
        "learning": vx.learning,
    }
    return tuple(sorted(info.items()))


def _vxlan_port(vx: Vxlan) -> tuple[tuple[str, bool], ...]:
    return tuple(sorted({"learning": vx.learning, "neigh_suppress": vx.neigh_suppress}.items()))


def _vlans_text(vlans: list[int]) -> str:
    return ",".join(str(v) for v in sorted(vlans))


def desired_state(spec: LinuxSpec, caps: Capabilities) -> Desired:
    """The links and sysctls ``spec`` asks for on a kernel with ``caps``."""
    out = Desired(
        caps.mode,
        {},
        dict(spec.sysctls),
        mgmt_interface=spec.management.interface,
        mgmt_address=spec.management.address,
    )
    if not caps.vxlan and spec.vxlans:
        out.unsupported.append(f"VXLAN devices: the kernel has none; VNIs {[v.vni for v in spec.vxlans]} not built")
    out.links["lo"] = Link("lo", "loopback", addresses=tuple(spec.loopback.addresses), up=True, note="loopback")
    if caps.vrf:
        for v in spec.vrfs:
            out.links[v.name] = Link(
                v.name, "vrf", info=(("table", v.table),), up=True, note=f"VRF (table {v.table}, L3 VNI {v.l3_vni})"
            )
    else:
        for v in spec.vrfs:
            out.unsupported.append(
                f"vrf {v.name} (table {v.table}, L3 VNI {v.l3_vni}): no VRF devices in this kernel; "
                "its SVIs and tenant routes stay in the main table"
            )
    if caps.mode == "vlan_aware":
        _vlan_aware(spec, caps, out)
    else:
        _traditional(spec, caps, out)
    return out


def _port(p: Port, master: str, vlans: tuple[tuple[int, bool, bool], ...] | None) -> Link:
    return Link(
        p.name,
        "port",
        mtu=p.mtu,
        up=p.admin_up,
        alias=safe_alias(p.description),
        master=master,
        addresses=tuple(p.addresses),
        vlans=vlans,
        note=f"{p.kind} port",
    )


def _vlan_aware(spec: LinuxSpec, caps: Capabilities, out: Desired) -> None:
    br = spec.bridge
    for p in spec.ports:
        if p.bridge is None or br is None:
            out.links[p.name] = _port(p, "", None)
            continue
        vl = [(v, False, False) for v in p.bridge.vlans if v != p.bridge.pvid]
        if p.bridge.pvid is not None:
            vl.append((p.bridge.pvid, True, True))
        out.links[p.name] = _port(p, br.name, tuple(sorted(vl)))
    if br is None or not caps.vxlan:
        return
    out.links[br.name] = Link(
        br.name,
        "bridge",
        info=(("vlan_filtering", True),),
        mtu=br.mtu,
        up=True,
        master="",
        vlans=tuple((v, False, False) for v in sorted(br.vlans)),
        note=f"VLAN-aware bridge (VLANs {_vlans_text(br.vlans)})",
    )
    for vx in spec.vxlans:
        out.links[vx.name] = Link(
            vx.name,
            "vxlan",
            info=_vxlan_info(vx),
            mtu=vx.mtu,
            up=True,
            master=br.name,
            port=_vxlan_port(vx),
            vlans=((vx.vlan, True, True),),
            note=f"{vx.kind.upper()} VNI {vx.vni} on VLAN {vx.vlan}",
        )
    for s in spec.svis:
        master = s.vrf if caps.vrf else ""
        out.links[s.name] = Link(
            s.name,
            "vlan",
            info=(("id", s.vlan), ("link", br.name)),
            mtu=s.mtu,
            up=True,
            mac=s.mac,
            master=master,
            addresses=tuple(s.addresses),
            note=f"{s.kind.upper()} SVI of VLAN {s.vlan} (VRF {s.vrf})",
        )


def _traditional(spec: LinuxSpec, caps: Capabilities, out: Desired) -> None:
    svi_by_vlan: dict[int, Svi] = {s.vlan: s for s in spec.svis}
    bridged: dict[int, str] = {}  # VLAN -> its bridge
    for vx in spec.vxlans if caps.vxlan else []:
        svi = svi_by_vlan.get(vx.vlan)
        if vx.kind == "l3" and not caps.vrf:
            out.unsupported.append(
                f"L3 VNI {vx.vni} (VLAN {vx.vlan}, VRF {svi.vrf if svi else '?'}): no VRF to bind it to; "
                f"{vx.name} and its SVI not built (symmetric IRB off, tenant routes stay in the main table)"
            )
            continue
        name = bridge_name(vx.vni)
        bridged[vx.vlan] = name
        master = svi.vrf if (svi is not None and caps.vrf) else ""
        out.links[name] = Link(
            name,
            "bridge",
            info=(("vlan_filtering", False),),
            mtu=svi.mtu if svi else vx.mtu,
            up=True,
            mac=svi.mac if svi else None,
            master=master,
            addresses=tuple(svi.addresses) if svi else (),
            note=f"traditional bridge of {vx.kind.upper()} VNI {vx.vni} (VLAN {vx.vlan})",
        )
        out.links[vx.name] = Link(
            vx.name,
            "vxlan",
            info=_vxlan_info(vx),
            mtu=vx.mtu,
            up=True,
            master=name,
            port=_vxlan_port(vx),
            note=f"{vx.kind.upper()} VNI {vx.vni} (VLAN {vx.vlan})",
        )
        if svi is not None:
            out.adaptations.append(f"SVI {svi.name} (VLAN {vx.vlan}) is bridge {name} (traditional bridge mode)")
    if spec.bridge is not None:
        out.adaptations.append(
            f"VLAN-aware bridge {spec.bridge.name} not built: one bridge per VNI instead "
            f"(kernel lacks {', '.join(caps.missing) or 'nothing'})"
        )
    for p in spec.ports:
        if p.bridge is None:
            out.links[p.name] = _port(p, "", None)
            continue
        tagged = [v for v in p.bridge.vlans if v != p.bridge.pvid]
        master = bridged.get(p.bridge.pvid, "") if p.bridge.pvid is not None else ""
        if p.bridge.pvid is None:
            out.unsupported.append(f"port {p.name}: no untagged VLAN; it joins no bridge")
        elif not master:
            out.unsupported.append(f"port {p.name}: its untagged VLAN {p.bridge.pvid} has no bridge here")
        if tagged:
            out.unsupported.append(
                f"port {p.name}: tagged VLANs {_vlans_text(tagged)} not carried: a traditional bridge needs an "
                f"802.1Q sub-interface ({p.name}.<vlan>) per VLAN, which this kernel cannot make"
            )
        out.links[p.name] = _port(p, master, None)
