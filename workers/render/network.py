"""Render the switches of the fabric: FRR (Linux + FRR) and Arista EOS.

Artifacts of one device (:func:`render_device`), all text with a final newline,
deterministic (sorted where order carries no meaning, no timestamps):

* platform ``frr``: ``frr.conf`` (an integrated FRR config, ``frr defaults
  datacenter``, loadable with ``vtysh -f`` or ``frr-reload.py``) and ``linux.json``
  (kernel side: ports, VRFs, bridge, VXLAN devices, SVIs; the FRR driver's schema,
  :mod:`workers.drivers.frr.linux_schema`, built by :mod:`workers.render.linux_side`);
* platform ``eos``: ``running-config`` (the L3LS EVPN design AVD renders).

Templates (``frr/frr.conf.j2``, ``eos/running-config.j2``) receive a small context of
plain strings, ints, lists and dicts computed here, so they stay simple and fast; a
repo may override them (``templates/<same name>``).

**Secrets are never rendered.** A secret in the model is a reference (``env:NAME`` or
``file:/path``); the artifacts carry the token ``{{secret:<ref>}}``, e.g.
``{{secret:env:FABRIC_BGP_PASSWORD}}``: the FRR driver's placeholder format
(:mod:`workers.drivers.frr.secret_tokens`). The deploy driver resolves it on the text it
pushes, at push time only; stored artifacts, plans and diffs keep the token.

Design choices shared by both platforms (so a mixed FRR/EOS fabric interoperates):

* eBGP underlay on every /31; only loopback and VTEP host routes are accepted and
  advertised (prefix-list ``PL-LOOPBACKS-EVPN-OVERLAY`` from the pools, plus any explicit
  address outside them);
* EVPN route-targets are explicit and fabric-wide: ``<A>:<VNI>`` with ``A`` the spine ASN
  (its low 16 bits when it is a 4-byte ASN, as FRR's auto-RT does), for L2 VNIs and
  L3 VNIs alike. FRR's auto-derived RTs would embed each leaf's own ASN;
* EOS route distinguishers are ``<router-id>:<VLAN>`` (MAC-VRF) and
  ``<router-id>:<L3 VLAN>`` (IP-VRF): unique per device and always < 65536. FRR derives its own;
* EVPN sessions: FRR<->FRR over the /31 underlay sessions (one eBGP session per link);
  whenever either end is EOS, over loopback-sourced multihop eBGP (AVD's
  ``EVPN-OVERLAY-PEERS``). Spines carry no VNIs and must keep the EVPN next hop (the
  leaf's VTEP): EOS ``next-hop-unchanged``; FRR 8.4 rewrites it to its own /31 address on
  eBGP unless told not to (measured), and ``attribute-unchanged next-hop`` works but never
  shows in its running-config under l2vpn evpn (perpetual drift, lost on ``write
  memory``), so FRR spines use an outbound route-map ``set ip next-hop unchanged``.
  FRR keeps every EVPN route in its global EVPN table whatever its route-targets
  (``bgp retain route-target all`` exists only for L3VPN in FRR 8.4), so nothing more is needed;
* the anycast gateway is the same IP and MAC on every leaf; ``advertise-svi-ip`` is
  therefore **not** used (it would advertise the shared gateway IP from every leaf);
* Linux VRF table ids are ``1000 + L3 VNI``: stable when VRFs are added or removed.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lintas.engine.diagnostics import Diagnostic
from lintas.workers.drivers.frr.linux_schema import LINUX_MGMT_IF
from lintas.workers.drivers.frr.secret_tokens import SECRET_REF_RE, secret_token
from lintas.workers.model.model import Device, InfraModel
from lintas.workers.model.overhead import overhead
from lintas.workers.render.env import Renderer, RenderError, TemplateCall
from lintas.workers.render.inputs import TargetInput
from lintas.workers.render.linux_side import linux_json

ARTIFACTS: dict[str, tuple[str, ...]] = {"frr": ("frr.conf", "linux.json"), "eos": ("running-config",)}
TEMPLATES: dict[str, str] = {"frr.conf": "frr/frr.conf.j2", "running-config": "eos/running-config.j2"}

_PORT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9/._:-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

VXLAN_PORT = 4789
VRF_TABLE_BASE = 1000
EOS_MGMT_IF = "Management1"


def device_input(model: InfraModel, name: str) -> TargetInput:
    """The input projection of switch ``name``: its template context (plain data) and nothing else."""
    device = model.devices.get(name)
    if device is None:
        raise RenderError([Diagnostic(file="fabric/devices.yaml", path=name, message=f"unknown device '{name}'")])
    ctx = device_context(model, device)
    artifact = "running-config" if device.platform == "eos" else "frr.conf"
    return TargetInput(
        target=name,
        kind="device",
        calls=(TemplateCall(TEMPLATES[artifact], name, ctx),),
        data=None,
        finish=finish_device,
    )


def finish_device(inp: TargetInput, texts: Sequence[str]) -> dict[str, str]:
    """The artifacts of a switch from its input and its rendered template (never from the model)."""
    (call,), (text,) = inp.calls, texts
    if call.template == TEMPLATES["running-config"]:
        return {"running-config": _finish(text)}
    return {"frr.conf": _finish(text), "linux.json": linux_json(dict(call.context))}


def render_device(model: InfraModel, name: str, renderer: Renderer) -> dict[str, str]:
    """``{artifact name: text}`` of switch ``name``. Raises RenderError naming template, line and device."""
    inp = device_input(model, name)
    return inp.finish(inp, renderer.render_many(inp.calls))


def _finish(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


# -- fabric-wide values, computed once per model ------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fabric:
    af: str
    ipkw: str
    host_len: int
    prefixes: list[dict[str, Any]]
    password: str | None
    vxlan_mtu: int
    networks: dict[str, dict[str, Any]]  # per network, without the per-leaf RD
    vrfs: dict[str, dict[str, Any]]


_CACHE: dict[int, tuple[weakref.ref[InfraModel], _Fabric]] = {}


def _fabric(model: InfraModel) -> _Fabric:
    hit = _CACHE.get(id(model))
    if hit is not None and hit[0]() is model:
        return hit[1]
    fs = model.fabric
    version = 4 if fs.underlay.address_family == "ipv4" else 6
    host_len = 32 if version == 4 else 128
    nets = [fs.pools.loopbacks, fs.pools.vteps]
    extra = sorted(
        {
            f"{addr}/{host_len}"
            for d in model.devices.values()
            for addr in (d.loopback, d.vtep)
            if addr is not None and not any(addr in n for n in nets)
        }
    )
    # "ge" only where the prefix is shorter than a host route (FRR refuses "/32 ge 32")
    entries = [(str(n), host_len if n.prefixlen < host_len else None) for n in nets] + [(p, None) for p in extra]
    prefixes = [{"seq": 10 * (i + 1), "prefix": p, "ge": ge} for i, (p, ge) in enumerate(entries)]
    ref = fs.underlay.password
    if ref is not None and not SECRET_REF_RE.fullmatch(ref):
        raise RenderError(
            [
                Diagnostic(
                    file="fabric/fabric.yaml",
                    path="fabric.underlay.password",
                    message=f"secret reference {ref!r} cannot be written as a token",
                )
            ]
        )
    asn = fs.underlay.spine_asn
    rt_admin = asn if asn <= 0xFFFF else asn & 0xFFFF
    networks, vrfs = _tenant_bases(model, rt_admin)
    result = _Fabric(
        af=fs.underlay.address_family,
        ipkw="ip" if version == 4 else "ipv6",
        host_len=host_len,
        prefixes=prefixes,
        password=secret_token(ref) if ref else None,
        vxlan_mtu=fs.mtu - overhead("vxlan", version),
        networks=networks,
        vrfs=vrfs,
    )
    if len(_CACHE) >= 8:
        _CACHE.clear()
    _CACHE[id(model)] = (weakref.ref(model), result)
    return result


# -- per-device context --------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _natural(name: str) -> tuple[Any, ...]:
    """Sort key: ``swp2`` before ``swp10`` (names repeat across devices: cached)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _text(value: str) -> str:
    """One line of free text: control characters (newlines!) would inject config lines."""
    return _CONTROL.sub(" ", value).strip()


def _port(device: Device, port: str) -> str:
    if not _PORT_RE.fullmatch(port):
        raise RenderError(
            [
                Diagnostic(
                    file="fabric/devices.yaml",
                    path=device.name,
                    message=f"port name {port!r} cannot be rendered safely",
                )
            ]
        )
    return port


def device_context(model: InfraModel, device: Device) -> dict[str, Any]:
    """The template context of one switch: plain data only."""
    fab = _fabric(model)
    fs = model.fabric
    rid = str(device.router_id)
    links, overlay_peers, evpn_on_underlay = _links(model, device)
    networks, vrfs = _tenants(model, device, fab, rid)
    host_ports = _host_ports(model, device)
    ports = sorted(
        [{"kind": "fabric", **x} for x in links] + [{"kind": "host", **x} for x in host_ports],
        key=lambda x: _natural(x["port"]),
    )
    loopbacks = [f"{device.loopback}/{fab.host_len}"]
    if device.vtep is not None:
        loopbacks.append(f"{device.vtep}/{fab.host_len}")
    mgmt = fs.management
    return {
        "hostname": device.name,
        "role": device.role,
        "is_leaf": device.is_leaf,
        "platform": device.platform,
        "description": _text(device.description),
        "asn": device.asn,
        "router_id": rid,
        "loopback": loopbacks[0],
        "vtep": loopbacks[1] if len(loopbacks) > 1 else None,
        "vtep_ip": str(device.vtep) if device.vtep is not None else None,
        "loopback_addresses": loopbacks,
        "af": fab.af,
        "ipkw": fab.ipkw,
        "host_len": fab.host_len,
        "mtu": fs.mtu,
        "vxlan_mtu": fab.vxlan_mtu,
        "vxlan_port": VXLAN_PORT,
        "anycast_mac": fs.overlay.anycast_gateway_mac,
        "bfd": fs.underlay.bfd,
        "maximum_paths": fs.underlay.maximum_paths,
        "password": fab.password,
        "prefixes": fab.prefixes,
        "links": links,
        "host_ports": host_ports,
        "ports": ports,
        "overlay_peers": overlay_peers,
        "evpn_on_underlay": evpn_on_underlay,
        "networks": networks,
        "vrfs": vrfs,
        "mgmt": {
            "interface": EOS_MGMT_IF if device.platform == "eos" else LINUX_MGMT_IF,
            "address": str(device.mgmt_ip),
            "gateway": str(mgmt.gateway) if mgmt.gateway else None,
            "default_route": "0.0.0.0/0" if device.mgmt_ip.version == 4 else "::/0",
            "vrf": mgmt.vrf,
        },
    }


def _links(model: InfraModel, device: Device) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """Underlay /31s; loopback EVPN peers (wherever either end is EOS); whether EVPN rides a /31."""
    links: list[dict[str, Any]] = []
    overlay: dict[str, dict[str, Any]] = {}
    evpn_on_underlay = False
    for link in model.links_by_device.get(device.name, ()):
        local, remote = link.local(device.name), link.remote(device.name)
        peer = model.devices[remote.device]
        links.append(
            {
                "port": _port(device, local.port),
                "address": str(local.ip),
                "mtu": link.mtu,
                "description": _text(link.description) or f"P2P_{peer.name}_{_port(peer, remote.port)}",
                "peer": peer.name,
                "peer_ip": str(remote.ip.ip),
                "peer_asn": peer.asn,
            }
        )
        if "eos" in (device.platform, peer.platform):
            overlay[peer.name] = {"peer": peer.name, "ip": str(peer.loopback), "asn": peer.asn}
        else:
            evpn_on_underlay = True
    links.sort(key=lambda x: _natural(x["port"]))
    return links, sorted(overlay.values(), key=lambda p: _natural(p["peer"])), evpn_on_underlay


def _tenants(
    model: InfraModel, device: Device, fab: _Fabric, rid: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """L2 networks (by VLAN) and the VRFs they need (by name) on one leaf."""
    nets = sorted((fab.networks[n] for n in model.networks_by_leaf.get(device.name, ())), key=lambda n: n["vlan"])
    networks = [{**net, "rd": f"{rid}:{net['vlan']}"} for net in nets]
    vrfs = [
        {**fab.vrfs[name], "rd": f"{rid}:{fab.vrfs[name]['l3_vlan']}"} for name in sorted({net["vrf"] for net in nets})
    ]
    return networks, vrfs


def _tenant_bases(model: InfraModel, rt_admin: int) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Each network's and VRF's context without the per-leaf RD: computed once per model with the
    other fabric-wide values (a 1,000-leaf fabric would otherwise format the same 20,000 entries
    again for every leaf)."""
    nets = {
        net.name: {
            "name": net.name,
            "vrf": net.vrf,
            "vlan": net.vlan,
            "vni": net.vni,
            "gateway": str(net.gateway),
            "mtu": net.mtu,
            "description": _text(net.description) or net.name,
            "rt": f"{rt_admin}:{net.vni}",
        }
        for net in model.networks.values()
    }
    vrfs = {
        v.name: {
            "name": v.name,
            "l3_vni": v.l3_vni,
            "l3_vlan": v.l3_vlan,
            "table": VRF_TABLE_BASE + v.l3_vni,
            "description": _text(v.description) or v.name,
            "rt": f"{rt_admin}:{v.l3_vni}",
        }
        for v in model.vrfs.values()
    }
    return nets, vrfs


def _host_ports(model: InfraModel, device: Device) -> list[dict[str, Any]]:
    """Leaf ports cabled to hypervisors: tunnel network untagged, the host's networks tagged."""
    out: list[dict[str, Any]] = []
    for name in model.hosts_by_leaf.get(device.name, ()):
        up = model.hosts[name].uplink
        pvid = model.networks[up.tunnel_network].vlan
        vlans = sorted({model.networks[n].vlan for n in up.networks} - {pvid})
        out.append(
            {
                "port": _port(device, up.port),
                "mtu": model.fabric.mtu,
                "description": f"{name}_{_text(up.nic)}",
                "pvid": pvid,
                "vlans": vlans,
                "allowed": ",".join(str(v) for v in sorted({pvid, *vlans})),
            }
        )
    out.sort(key=lambda x: _natural(x["port"]))
    return out
