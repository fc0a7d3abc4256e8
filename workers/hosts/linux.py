"""The Linux side of a host's OVS: addresses on OVS internal ports (the tunnel endpoint).

OVSDB has no column for an interface's IP address, so these go over SSH (OpenSSH client,
``BatchMode``, strict host keys against Lintas's known_hosts): ``ip -j address show`` to
read, ``ip address replace|del`` and ``ip link set up`` to change. A twin's host (``conn.namespace``)
is reached by the same client run inside the twin's management namespace (``ip netns exec``; only a
twin's management namespace is accepted). Only the interfaces the
spec names (or named before) are looked at; only global-scope addresses are managed.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import subprocess
from collections.abc import Iterable

from lintas.workers.hosts.connect import HostConn
from lintas.workers.reach.allowlist import ConnectError
from lintas.workers.reach.netns import twin_mgmt_namespace
from lintas.workers.render.ovs_schema import IpAddress


class HostShellError(RuntimeError):
    pass


def ssh(conn: HostConn, argv: list[str], *, timeout_s: float = 20.0) -> str:
    if conn.known_hosts is None:
        raise HostShellError("no known_hosts: host keys are always checked")
    try:
        inside = ["ip", "netns", "exec", twin_mgmt_namespace(conn.namespace)] if conn.namespace else []
    except ConnectError as exc:
        raise HostShellError(str(exc)) from exc
    cmd = [
        *inside,
        "ssh",
        "-T",
        "-p",
        str(conn.ssh_port),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={conn.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"ConnectTimeout={int(min(timeout_s, 15))}",
        "-F",
        "/dev/null",
    ]
    if conn.key_file is not None:
        cmd += ["-o", "IdentitiesOnly=yes", "-i", str(conn.key_file)]
    cmd += [f"{conn.ssh_user}@{conn.address}", "--", shlex.join(argv)]
    try:
        p = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise HostShellError(f"`{shlex.join(argv)}` timed out after {timeout_s:g} s") from exc
    if p.returncode != 0:
        raise HostShellError(f"`{shlex.join(argv)}` exited {p.returncode}: {p.stderr.strip()[-300:]}")
    return p.stdout


def links(conn: HostConn, interfaces: Iterable[str]) -> dict[str, tuple[bool, list[str]]]:
    """``{interface: (admin up, [global addresses with prefix])}`` in one SSH round trip;
    an interface that does not exist maps to ``(False, [])``."""
    wanted = set(interfaces)
    if not wanted:
        return {}
    data = json.loads(ssh(conn, ["ip", "-j", "address", "show"]) or "[]")
    out: dict[str, tuple[bool, list[str]]] = {i: (False, []) for i in wanted}
    for link in data:
        name = link.get("ifname")
        if name in wanted:
            out[name] = (
                "UP" in link.get("flags", []),
                sorted(
                    f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("scope") == "global"
                ),
            )
    return out


def addresses(conn: HostConn, interfaces: Iterable[str]) -> dict[str, list[str]]:
    """``{interface: [global addresses with prefix]}``."""
    return {i: addrs for i, (_up, addrs) in links(conn, interfaces).items()}


def converge(conn: HostConn, want: list[IpAddress], scope: Iterable[str]) -> list[str]:
    """Addresses on the interfaces in ``scope`` to exactly ``want`` (and those interfaces up)."""
    scope = set(scope) | {a.interface for a in want}
    now = links(conn, scope)
    have = {i: addrs for i, (_up, addrs) in now.items()}
    steps: list[list[str]] = []
    done: list[str] = []
    desired: dict[str, set[str]] = {i: set() for i in scope}
    for a in want:
        desired[a.interface].add(str(ipaddress.ip_interface(a.address)))
    for iface in sorted(scope):
        for addr in sorted(set(have.get(iface, [])) - desired[iface]):
            steps.append(["ip", "address", "del", addr, "dev", iface])
            done.append(f"{iface}: address {addr} removed")
        for addr in sorted(desired[iface] - set(have.get(iface, []))):
            steps.append(["ip", "address", "replace", addr, "dev", iface])
            done.append(f"{iface}: address {addr}")
    for iface in sorted(i for i, addrs in desired.items() if addrs):
        if not now.get(iface, (False, []))[0]:
            steps.append(["ip", "link", "set", "dev", iface, "up"])
            done.append(f"{iface}: up")
    if steps:
        script = " && ".join(shlex.join(s) for s in steps)
        ssh(conn, ["sh", "-c", script])
    return done


def differences(conn: HostConn, want: list[IpAddress]) -> list[str]:
    now = links(conn, {a.interface for a in want})
    out = []
    for a in want:
        addr = str(ipaddress.ip_interface(a.address))
        up, have = now.get(a.interface, (False, []))
        if addr not in have:
            out.append(f"{a.interface}: address {addr} missing (have {', '.join(have) or 'none'})")
        elif not up:
            out.append(f"{a.interface}: down")
    return out
