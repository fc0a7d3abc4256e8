"""The lab's network with iproute2: namespaces, veth pairs, the management bridge.

Commands are argument lists; bulk work goes through ``ip -batch -`` (one process for
all namespaces and links, one per namespace for addresses) so a 34-switch lab is
built in well under a second. Building is idempotent: what exists is listed first and
only what is missing is created; addresses use ``addr replace`` and never remove
anything a deploy added.

Network safety: the only root-namespace objects are the bridge ``lxmgmt0`` (with the
management gateway address) and the management veths enslaved to it. IPv4 forwarding is
switched off for packets arriving on the bridge (``net.ipv4.conf.lxmgmt0.forwarding=0``)
and IPv6 is disabled on the bridge and its ports, so nothing from a lab namespace is
routed to other interfaces of the machine even where ``ip_forward`` is on. No default
route is added anywhere; the management subnet must not overlap a route of the machine.

A twin (``plan.mgmt_namespace`` set) puts its bridge, its gateway address and the bridge ends of
its management veths in that namespace instead: it creates nothing at all in the root namespace
(every veth is created directly inside its namespaces), and the management namespace has
forwarding and IPv6 off and no route but its own subnet.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from lintas.workers.lab.cmd import LabError, Tools, run
from lintas.workers.lab.paths import DEVICE_FRR_ETC, DEVICE_FRR_LOG, DEVICE_FRR_RUN, HOST_MOUNTS
from lintas.workers.lab.topology import MGMT_BRIDGE_MAC, MGMT_IF, NS_PREFIX, LabPlan, is_lab_namespace, is_lab_root_link

DEVICE_MOUNTS = {DEVICE_FRR_ETC, DEVICE_FRR_RUN, DEVICE_FRR_LOG} | {os.path.realpath(d) for _, d in HOST_MOUNTS}


async def list_namespaces(tools: Tools) -> list[str]:
    out = (await run([tools.ip, "-j", "netns", "list"])).stdout.strip()
    if not out:
        return []
    return [str(e["name"]) for e in json.loads(out) if isinstance(e, dict) and "name" in e]


async def lab_namespaces(tools: Tools) -> list[str]:
    return [n for n in await list_namespaces(tools) if is_lab_namespace(n)]


async def links(tools: Tools, namespace: str | None = None) -> dict[str, dict[str, Any]]:
    """``{ifname: ip -j -d link entry}`` of the root namespace or of ``namespace``."""
    argv = [tools.ip] + (["-n", namespace] if namespace else []) + ["-j", "-d", "link", "show"]
    res = await run(argv, check=namespace is None)
    if res.returncode != 0:
        return {}
    return {str(e["ifname"]): e for e in json.loads(res.stdout or "[]")}


async def addresses(tools: Tools, namespace: str | None = None) -> dict[str, list[str]]:
    argv = [tools.ip] + (["-n", namespace] if namespace else []) + ["-j", "addr", "show"]
    res = await run(argv, check=False)
    if res.returncode != 0:
        return {}
    return {
        str(e["ifname"]): [f"{a['local']}/{a['prefixlen']}" for a in e.get("addr_info", []) if "local" in a]
        for e in json.loads(res.stdout or "[]")
    }


async def batch(tools: Tools, lines: list[str], namespace: str | None = None, force: bool = False) -> None:
    if not lines:
        return
    argv = [tools.ip] + (["-n", namespace] if namespace else []) + (["-force"] if force else []) + ["-batch", "-"]
    await run(argv, input="\n".join(lines) + "\n", check=not force, timeout=120)


async def check_mgmt_subnet(tools: Tools, plan: LabPlan) -> None:
    """Refuse a management subnet that overlaps a route or address of the machine (other than ours)."""
    subnet = ipaddress.ip_network(plan.mgmt_subnet)
    fam = "-4" if subnet.version == 4 else "-6"
    out = (await run([tools.ip, fam, "-j", "route", "show", "table", "all"])).stdout
    for r in json.loads(out or "[]"):
        dst, dev = r.get("dst", ""), r.get("dev", "")
        if dst in ("default", "") or is_lab_root_link(dev) or r.get("type") in ("broadcast", "multicast"):
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if net.version == subnet.version and net.overlaps(subnet) and not net.is_loopback:
            raise LabError(
                f"the management subnet {subnet} overlaps route {dst} on {dev or '?'} of this machine: "
                "the lab would capture or leak that traffic; change fabric.management.subnet"
            )


def _write_sysctl(path: str, value: str) -> None:
    with contextlib.suppress(OSError):  # an interface without IPv6, or a read-only /proc/sys
        Path(path).write_text(value)


def isolate_root_links(plan: LabPlan) -> None:
    """No forwarding from the management bridge; no IPv6 on it when management is IPv4."""
    v4 = ipaddress.ip_network(plan.mgmt_subnet).version == 4
    names = [plan.bridge] + [n.mgmt_veth for n in plan.nodes]
    for n in names:
        _write_sysctl(f"/proc/sys/net/ipv4/conf/{n}/forwarding", "0")
        _write_sysctl(f"/proc/sys/net/ipv6/conf/{n}/forwarding", "0")
        if v4 or n != plan.bridge:
            _write_sysctl(f"/proc/sys/net/ipv6/conf/{n}/disable_ipv6", "1")


async def isolate_mgmt_namespace(tools: Tools, namespace: str) -> None:
    """A twin's management namespace: no forwarding, no IPv6 (set before any link is added)."""
    keys = [
        "net.ipv4.ip_forward=0",
        "net.ipv4.conf.all.forwarding=0",
        "net.ipv4.conf.default.forwarding=0",
        "net.ipv6.conf.all.forwarding=0",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ]
    await run([tools.ip, "netns", "exec", namespace, tools.sysctl, "-q", "-w", *keys])


async def build(tools: Tools, plan: LabPlan) -> dict[str, int]:  # noqa: C901 - the lab's build steps in order
    """Create whatever of the plan's network is missing; returns counts of what was created."""
    created = {"namespaces": 0, "veths": 0, "mgmt": 0}
    mg = plan.mgmt_namespace  # where the bridge lives: None is the root namespace
    existing = set(await list_namespaces(tools))
    wanted = plan.namespaces + ([mg] if mg else [])
    missing_ns = [n for n in wanted if n not in existing]
    await batch(tools, [f"netns add {n}" for n in missing_ns])
    created["namespaces"] = len(missing_ns)
    if mg:
        await isolate_mgmt_namespace(tools, mg)

    ns_links = dict(
        zip(plan.namespaces, await asyncio.gather(*(links(tools, n) for n in plan.namespaces)), strict=True)
    )
    root = await links(tools, mg)  # the bridge's namespace
    where = mg or "the root namespace"
    lines: list[str] = []  # in the bridge's namespace
    fabric: list[str] = []  # in the root namespace, every end named into its namespace
    repair: list[tuple[str | None, str]] = []  # half-present pairs to delete first
    flush: list[str] = []
    if plan.bridge in root and root[plan.bridge].get("linkinfo", {}).get("info_kind") != "bridge":
        raise LabError(f"{plan.bridge} exists in {where} but is not a bridge; remove it first")
    if plan.bridge not in root:
        # a fixed MAC: a bridge otherwise takes its lowest port's, and the switches' ARP entries
        # for the gateway would go stale whenever a management veth is replaced
        lines.append(f"link add {plan.bridge} address {MGMT_BRIDGE_MAC} type bridge")
    for p in plan.links:
        have_a, have_b = p.a.ifname in ns_links[p.a.namespace], p.b.ifname in ns_links[p.b.namespace]
        if have_a and have_b:
            continue
        if have_a:
            repair.append((p.a.namespace, p.a.ifname))
        if have_b:
            repair.append((p.b.namespace, p.b.ifname))
        fabric.append(
            f"link add {p.a.ifname} netns {p.a.namespace} mtu {p.a.mtu} type veth "
            f"peer name {p.b.ifname} netns {p.b.namespace} mtu {p.b.mtu}"
        )
        created["veths"] += 1
    for s in plan.nodes:
        have_ns, have_root = MGMT_IF in ns_links[s.namespace], s.mgmt_veth in root
        if not (have_ns and have_root):
            if have_ns:
                repair.append((s.namespace, MGMT_IF))
            if have_root:
                repair.append((mg, s.mgmt_veth))
            lines.append(f"link add {s.mgmt_veth} type veth peer name {MGMT_IF} netns {s.namespace}")
            flush.append(s.mgmt_address)  # the bridge's ARP entry still has the old eth0's MAC
            created["mgmt"] += 1
        lines.append(f"link set {s.mgmt_veth} master {plan.bridge} up")
    lines += [f"addr replace {plan.mgmt_gateway} dev {plan.bridge}", f"link set {plan.bridge} up"]
    lines += [f"neigh flush to {a} dev {plan.bridge}" for a in flush]
    for ns, ifname in repair:
        await run([tools.ip] + (["-n", ns] if ns else []) + ["link", "del", ifname], check=False)
    # the bridge and the veths exist (down) before the sysctls; forwarding is off before they come up
    await batch(tools, fabric)
    await batch(tools, [ln for ln in lines if ln.startswith("link add")], namespace=mg)
    if mg is None:
        isolate_root_links(plan)
    else:
        lines.append("link set lo up")
    await batch(tools, [ln for ln in lines if not ln.startswith("link add")], namespace=mg)

    async def configure(ns: str) -> None:
        cmds = ["link set lo up"]
        for e in plan.ends_in(ns):
            cmds.append(f"link set {e.ifname} mtu {e.mtu}")
            if e.address:
                cmds.append(f"addr replace {e.address} dev {e.ifname}")
            cmds.append(f"link set {e.ifname} up")
        sw = next((s for s in plan.nodes if s.namespace == ns), None)
        if sw is not None:
            cmds += [f"addr replace {sw.mgmt_ip} dev {MGMT_IF}", f"link set {MGMT_IF} up"]
        await batch(tools, cmds, namespace=ns)

    await asyncio.gather(*(configure(n) for n in plan.namespaces))
    return created


def namespace_inodes(namespaces: list[str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for n in namespaces:
        try:
            out[os.stat(f"/run/netns/{n}").st_ino] = n
        except OSError:
            continue
    return out


def pids_in(inodes: set[int]) -> set[int]:
    """Live (non-zombie) processes whose network namespace is one of ``inodes``."""
    found: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry.name}/ns/net").st_ino in inodes and _alive(int(entry.name)):
                found.add(int(entry.name))
        except OSError:
            continue
    found.discard(os.getpid())
    return found


def orphan_pids(run_root_name: str = "lintas-lab", *, marker: str | None = None) -> set[int]:
    """Processes of a lab switch or host whose namespace lost its name (a crashed `up` or `down`).

    Recognised by their mount namespace: a lab directory bind-mounted over /etc/frr,
    /run/frr, /var/log/frr or a host's libvirt and OVS directories (see :mod:`workers.lab.nsexec`),
    whose mount root contains ``marker`` (default ``<run_root_name>/lx-``; a twin's is
    ``lintas-twin/<prefix>/``, :attr:`workers.lab.paths.LabPaths.mount_marker`).
    """
    return set(orphan_mounts(marker or f"{run_root_name}/{NS_PREFIX}"))


def orphan_mounts(marker: str) -> dict[int, str]:
    """``{pid: mount root}`` of live processes outside the root network namespace with a lab
    directory whose mount root contains ``marker`` bind-mounted over a device path."""
    own_net = os.stat("/proc/self/ns/net").st_ino
    found: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry.name}/ns/net").st_ino == own_net:
                continue
            with open(f"/proc/{entry.name}/mountinfo") as f:
                for line in f:
                    fields = line.split(" ", 6)
                    if len(fields) > 5 and marker in fields[3] and fields[4] in DEVICE_MOUNTS:
                        found[int(entry.name)] = fields[3]
                        break
        except (OSError, ValueError):
            continue
    return {p: root for p, root in found.items() if _alive(p)}


async def kill_pids(pids: set[int], grace_s: float = 3.0) -> int:
    for p in pids:
        _signal(p, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        alive = {p for p in alive if _alive(p)}
    for p in alive:
        _signal(p, signal.SIGKILL)
    return len(pids)


async def kill_namespace_processes(namespaces: list[str], grace_s: float = 3.0, inodes: set[int] | None = None) -> int:
    """Stop every process in the namespaces: SIGTERM, then SIGKILL after ``grace_s``.

    Scans until the namespaces stay empty, since a dying launcher may still fork a daemon;
    returns how many processes were signalled.
    """
    inodes = inodes if inodes is not None else set(namespace_inodes(namespaces))
    if not inodes:
        return 0
    signalled: set[int] = set()
    start = time.monotonic()
    quiet = 0
    while quiet < 3:
        pids = pids_in(inodes)
        if not pids:
            quiet += 1
            await asyncio.sleep(0.03)
            continue
        quiet = 0
        elapsed = time.monotonic() - start
        if elapsed > grace_s + 10:
            raise LabError(f"processes {sorted(pids)} survive SIGKILL in {', '.join(namespaces)}")
        for p in pids:
            if p not in signalled:
                _signal(p, signal.SIGTERM)
            elif elapsed > grace_s:
                _signal(p, signal.SIGKILL)
        signalled |= pids
        await asyncio.sleep(0.05)
    return len(signalled)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def remove(tools: Tools, namespaces: list[str], *, root_links: bool = True) -> dict[str, int]:
    """Delete the namespaces (their veths go with them) and, with ``root_links``, every lab link
    of the root namespace (the bridge, stray management veths)."""
    present = set(await list_namespaces(tools))
    gone = [n for n in namespaces if n in present]
    await batch(tools, [f"netns del {n}" for n in gone], force=True)
    root = [n for n in await links(tools) if is_lab_root_link(n)] if root_links else []
    await batch(tools, [f"link del {n}" for n in root], force=True)
    left = [n for n in await list_namespaces(tools) if n in set(namespaces)]
    if left:
        raise LabError(f"could not delete namespaces: {', '.join(left)}")
    return {"namespaces": len(gone), "root_links": len(root)}
