"""Running the lab's system commands: errors, prerequisites, an async subprocess helper.

Every command is an argument list (never a shell string) with an absolute program
path resolved once by :func:`find_tools`, so a hostile ``$PATH`` later on cannot swap
a binary and the error for a missing one names the apt package that provides it.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import shutil
import sys
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from lintas.engine.errors import ConfigError, LintasError

T = TypeVar("T")

FRR_DAEMON_DIR = Path("/usr/lib/frr")
NSEXEC = Path(__file__).resolve().with_name("nsexec.py")
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
FRR_USER = "frr"
FRR_GROUP = "frr"
FRR_VTY_GROUP = "frrvty"

# program -> apt package that provides it (Debian 12)
PROGRAMS: dict[str, str] = {
    "ip": "iproute2",
    "ping": "iputils-ping",
    "ssh-keygen": "openssh-client",
    "ssh": "openssh-client",
    "sshd": "openssh-server",
    "vtysh": "frr",
    # hypervisor hosts: libvirt + QEMU + Open vSwitch in each host's namespaces
    "libvirtd": "libvirt-daemon-system",
    "virtlogd": "libvirt-daemon-system",
    "qemu-system-x86_64": "qemu-system-x86",
    "ovsdb-server": "openvswitch-switch",
    "ovs-vswitchd": "openvswitch-switch",
    "ovs-vsctl": "openvswitch-switch",
    "ovsdb-tool": "openvswitch-switch",
    "sysctl": "procps",
}
FRR_DAEMON_FILES: dict[str, str] = {
    "zebra": "frr",
    "bgpd": "frr",
    "bfdd": "frr",
    "frr-reload.py": "frr-pythontools",
}


class LabError(LintasError):
    """The lab could not be built, inspected or torn down."""


class PrerequisiteError(ConfigError, LabError):
    """Not root, or a program the lab needs is missing: the message lists each one."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = list(missing)
        super().__init__("lintas lab cannot run; missing: " + "; ".join(self.missing))


class CommandError(LabError):
    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        what = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(f"`{' '.join(self.argv)}` {what}: {self.stderr[-2000:]}")


@dataclass(frozen=True, slots=True)
class Tools:
    """Absolute paths of every program the lab runs."""

    ip: str
    ping: str
    ssh_keygen: str
    ssh: str
    sshd: str
    vtysh: str
    libvirtd: str
    virtlogd: str
    qemu: str
    ovsdb_server: str
    ovs_vswitchd: str
    ovs_vsctl: str
    ovsdb_tool: str
    frr_dir: Path = FRR_DAEMON_DIR
    sysctl: str = "/usr/sbin/sysctl"  # a twin's management namespace

    def daemon(self, name: str) -> str:
        return str(self.frr_dir / name)

    @property
    def frr_reload(self) -> str:
        return str(self.frr_dir / "frr-reload.py")


def find_tools(path: str | None = None, *, need_root: bool = True, teardown: bool = False) -> Tools:
    """Check the prerequisites (root, programs on ``$PATH``, FRR daemons, the frr user).

    Raises :class:`PrerequisiteError` naming every missing piece and how to get it.
    With ``teardown``, only root and ``ip`` are required (``lab down`` needs no more).
    """
    missing: list[str] = []
    if need_root and os.geteuid() != 0:
        missing.append(f"root privileges (running as uid {os.geteuid()}; run `sudo lintas lab ...`)")
    found: dict[str, str] = {}
    for prog, package in PROGRAMS.items():
        where = shutil.which(prog, path=path if path is not None else os.environ.get("PATH", os.defpath))
        if where is None and not (teardown and prog != "ip"):
            missing.append(f"`{prog}` not found on PATH (apt-get install {package})")
        found[prog] = where or prog
    if teardown:
        if missing:
            raise PrerequisiteError(missing)
        return _tools(found)
    for name, package in FRR_DAEMON_FILES.items():
        if not os.access(FRR_DAEMON_DIR / name, os.X_OK):
            missing.append(f"{FRR_DAEMON_DIR / name} (apt-get install {package})")
    try:
        pwd.getpwnam(FRR_USER)
        grp.getgrnam(FRR_GROUP)
        grp.getgrnam(FRR_VTY_GROUP)
    except KeyError:
        missing.append(f"user {FRR_USER} / groups {FRR_GROUP}, {FRR_VTY_GROUP} (apt-get install frr)")
    if missing:
        raise PrerequisiteError(missing)
    return _tools(found)


def _tools(found: dict[str, str]) -> Tools:
    return Tools(
        ip=found["ip"],
        ping=found["ping"],
        ssh_keygen=found["ssh-keygen"],
        ssh=found["ssh"],
        sshd=found["sshd"],
        vtysh=found["vtysh"],
        libvirtd=found["libvirtd"],
        virtlogd=found["virtlogd"],
        qemu=found["qemu-system-x86_64"],
        ovsdb_server=found["ovsdb-server"],
        ovs_vswitchd=found["ovs-vswitchd"],
        ovs_vsctl=found["ovs-vsctl"],
        ovsdb_tool=found["ovsdb-tool"],
        sysctl=found["sysctl"],
    )


@dataclass(frozen=True, slots=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


async def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> Result:
    """Run ``argv`` (no shell); raise :class:`CommandError` on a non-zero exit when ``check``."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(input.encode() if input is not None else None), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CommandError(argv, None, f"no answer within {timeout:g} s") from None
    result = Result(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))
    if check and result.returncode != 0:
        raise CommandError(argv, result.returncode, result.stderr or result.stdout)
    return result


def nsexec_argv(
    tools: Tools, namespace: str, hostname: str, binds: Iterable[tuple[str, str]], commands: Sequence[Sequence[str]]
) -> list[str]:
    """Run ``commands`` in ``namespace`` with its own hostname and bind mounts (see nsexec.py)."""
    argv = [tools.ip, "netns", "exec", namespace, sys.executable, "-I", "-S", str(NSEXEC), "--hostname", hostname]
    for src, dst in binds:
        argv += ["--bind", src, dst]
    argv.append(json.dumps([list(c) for c in commands]))
    return argv


async def gather_limited(limit: int, coros: Iterable[Awaitable[T]]) -> list[T]:
    """``asyncio.gather`` with at most ``limit`` awaitables running at once; the first error is raised."""
    sem = asyncio.Semaphore(limit)

    async def one(c: Awaitable[T]) -> T:
        async with sem:
            return await c

    return list(await asyncio.gather(*(one(c) for c in coros)))
