"""``linux.json`` of an FRR switch, built from its render context.

The schema is the FRR driver's (:mod:`workers.drivers.frr.linux_schema`): the renderer writes
what the driver reads, and the driver imports nothing of the renderer.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from lintas.engine.diagnostics import Diagnostic
from lintas.workers.drivers.frr.linux_schema import BRIDGE, LINUX_MGMT_IF, SYSCTLS, LinuxSpec, dump_linux_spec
from lintas.workers.render.env import RenderError


def linux_spec(ctx: dict[str, Any]) -> LinuxSpec:
    """The Linux side of an FRR switch, from its template context (``network.device_context``)."""
    ports = [
        {"name": p["port"], "kind": "fabric", "mtu": p["mtu"], "description": p["description"],
         "addresses": [p["address"]]}
        if p["kind"] == "fabric"
        else {"name": p["port"], "kind": "host", "mtu": p["mtu"], "description": p["description"],
              "bridge": {"pvid": p["pvid"], "vlans": p["vlans"]}}
        for p in ctx["ports"]
    ]  # fmt: skip
    data: dict[str, Any] = {
        "hostname": ctx["hostname"],
        "management": {"interface": LINUX_MGMT_IF} | {k: ctx["mgmt"][k] for k in ("address", "gateway", "vrf")},
        "sysctls": SYSCTLS,
        "loopback": {"addresses": ctx["loopback_addresses"]},
        "ports": ports,
    }
    vtep, mtu, port = ctx["vtep_ip"], ctx["vxlan_mtu"], ctx["vxlan_port"]
    if ctx["networks"] and vtep is not None:
        nets, vrfs = ctx["networks"], ctx["vrfs"]
        vxlans = [(n["vni"], n["vlan"], "l2") for n in nets] + [(v["l3_vni"], v["l3_vlan"], "l3") for v in vrfs]
        data["vxlans"] = [
            {"name": f"vni{vni}", "kind": kind, "vni": vni, "vlan": vlan, "local_ip": vtep, "dstport": port, "mtu": mtu}
            for vni, vlan, kind in sorted(vxlans)
        ]  # fmt: skip
        svis = [
            {"name": f"vlan{n['vlan']}", "kind": "l2", "vlan": n["vlan"], "vrf": n["vrf"], "mtu": n["mtu"],
             "addresses": [n["gateway"]], "mac": ctx["anycast_mac"]}
            for n in nets
        ] + [
            {"name": f"vlan{v['l3_vlan']}", "kind": "l3", "vlan": v["l3_vlan"], "vrf": v["name"], "mtu": mtu}
            for v in vrfs
        ]  # fmt: skip
        data["svis"] = sorted(svis, key=lambda x: x["vlan"])
        data["vrfs"] = [{"name": v["name"], "table": v["table"], "l3_vni": v["l3_vni"]} for v in vrfs]
        data["bridge"] = {"name": BRIDGE, "mtu": mtu, "vlans": sorted(vlan for _, vlan, _ in vxlans)}
    try:
        return LinuxSpec.model_validate(data)
    except ValidationError as exc:
        where = ctx["hostname"]
        raise RenderError([
            Diagnostic(file="linux.json", path=where, message=f"{where}: {e['msg']} at {'.'.join(map(str, e['loc']))}")
            for e in exc.errors()
        ]) from exc  # fmt: skip


def linux_json(ctx: dict[str, Any]) -> str:
    """Canonical ``linux.json`` text of one switch."""
    return dump_linux_spec(linux_spec(ctx))
