"""A lab hypervisor host: libvirt + QEMU and Open vSwitch in the host's own namespaces.

Each host of the model runs, in its network namespace ``lx-<host>`` and a mount
namespace where its directories under ``/run/lintas-lab/lx-<host>/`` are bind-mounted
over the standard paths (see :mod:`workers.lab.paths`), in this order:

* ``virtlogd`` and ``libvirtd`` (unix sockets only, no TCP; QEMU runs as root because
  ``/dev/kvm`` may be root-only, with no security driver and no cgroups, so a domain
  leaves nothing outside the host's directories and namespace). ``/etc/libvirt`` holds
  only the lab's ``libvirtd.conf``, ``virtlogd.conf`` and ``qemu.conf``: no default
  network, so no dnsmasq;
* ``ovsdb-server`` (its database created from the root side with ``ovsdb-tool``; remotes:
  the unix socket and ``ptcp:6640:<mgmt ip>``, what the deployer connects to), then
  ``ovs-vsctl --no-wait init`` and ``ovs-vswitchd``. No kernel module: bridges use
  ``datapath_type=netdev``;
* ``sshd`` (see :mod:`workers.lab.ssh`): sessions inherit the mount namespace, so
  ``virsh -c qemu:///system`` and ``ovs-vsctl`` over SSH reach the host's own daemons.

Each is started only when it is not running (pid file + network namespace check), so
``lab up`` repairs a host by starting just what is missing. QEMU processes are children
of the host's libvirtd, in its network namespace: ``lab down`` kills them with the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from pathlib import Path

import lintas.workers.lab.frr as frr
from lintas.workers.lab.cmd import Tools, run
from lintas.workers.lab.paths import HOST_MOUNTS, LabPaths
from lintas.workers.lab.topology import HostPlan

DAEMONS: tuple[str, ...] = ("virtlogd", "libvirtd", "ovsdb-server", "ovs-vswitchd")
OVSDB_PORT = 6640
OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
KVM_DEVICE = "/dev/kvm"
_KVM_GET_API_VERSION = 0xAE00
_KVM_API_VERSION = 12

# pid files, as the host sees them: (directory inside the host, file)
_PIDFILES = {
    "virtlogd": ("/run/libvirt", "virtlogd.pid"),
    "libvirtd": ("/run/libvirt", "libvirtd.pid"),
    "ovsdb-server": ("/run/openvswitch", "ovsdb-server.pid"),
    "ovs-vswitchd": ("/run/openvswitch", "ovs-vswitchd.pid"),
}


def kvm_usable(device: str = KVM_DEVICE) -> bool:
    """True when ``/dev/kvm`` opens read-write and answers KVM_GET_API_VERSION (else domains use TCG)."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, _KVM_GET_API_VERSION) == _KVM_API_VERSION
    except OSError:
        return False
    finally:
        os.close(fd)


def domain_type() -> str:
    """libvirt ``<domain type=...>`` for this machine: ``kvm``, or ``qemu`` without usable KVM."""
    return "kvm" if kvm_usable() else "qemu"


def ovsdb_remote(host: HostPlan) -> str:
    return f"tcp:{host.mgmt_address}:{OVSDB_PORT}"


def libvirtd_conf(host: HostPlan) -> str:
    return f"""# Written by `lintas lab up`: libvirtd of lab host {host.name} (unix sockets only, no TCP/TLS).
listen_tls = 0
listen_tcp = 0
unix_sock_group = "root"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""


def virtlogd_conf(host: HostPlan) -> str:
    return f"""# Written by `lintas lab up`: virtlogd of lab host {host.name}.
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
"""


def qemu_conf(host: HostPlan) -> str:
    return f"""# Written by `lintas lab up`: QEMU driver of lab host {host.name}.
# QEMU runs as root: /dev/kvm may be root-only on a lab machine.
user = "root"
group = "root"
# no AppArmor/SELinux profiles and no cgroups: a domain leaves nothing outside the lab host
security_driver = "none"
cgroup_controllers = [ ]
"""


def mount_points() -> list[Path]:
    """The root-namespace directories a host's bind mounts cover (``/var/run`` resolved)."""
    return [Path(os.path.realpath(inside)) for _, inside in HOST_MOUNTS]


def _write_config(paths: LabPaths, host: HostPlan) -> None:
    paths.run_dir(host.name).mkdir(mode=0o755, parents=True, exist_ok=True)
    for src, _ in paths.host_binds(host.name):
        Path(src).mkdir(mode=0o755, exist_ok=True)
    etc = paths.libvirt_etc(host.name)
    for name, text in (
        ("libvirtd.conf", libvirtd_conf(host)),
        ("virtlogd.conf", virtlogd_conf(host)),
        ("qemu.conf", qemu_conf(host)),
    ):
        (etc / name).write_text(text)
        (etc / name).chmod(0o644)


async def write_host_files(tools: Tools, paths: LabPaths, host: HostPlan) -> None:
    """The host's directories, its libvirt configuration (rewritten) and OVS database (made once)."""
    _write_config(paths, host)
    db = paths.ovs_etc(host.name) / "conf.db"
    if not db.exists():
        await run([tools.ovsdb_tool, "create", str(db), str(OVS_SCHEMA)])


def daemon_argv(tools: Tools, daemon: str, host: HostPlan) -> list[list[str]]:
    """Command lines that start ``daemon``, in the paths the host's mount namespace shows."""
    pid_dir, pid_name = _PIDFILES[daemon]
    pidfile = f"{pid_dir}/{pid_name}"
    if daemon == "virtlogd":
        return [[tools.virtlogd, "-d", "-p", pidfile]]
    if daemon == "libvirtd":
        return [[tools.libvirtd, "-d", "-p", pidfile]]
    if daemon == "ovsdb-server":
        return [
            [
                tools.ovsdb_server,
                "/etc/openvswitch/conf.db",
                "--remote=punix:/run/openvswitch/db.sock",
                f"--remote=ptcp:{OVSDB_PORT}:{host.mgmt_address}",
                f"--pidfile={pidfile}",
                "--detach",
                "--log-file=/var/log/openvswitch/ovsdb-server.log",
            ]
        ]
    if daemon == "ovs-vswitchd":
        return [
            [tools.ovs_vsctl, "--no-wait", "init"],
            [
                tools.ovs_vswitchd,
                "unix:/run/openvswitch/db.sock",
                f"--pidfile={pidfile}",
                "--detach",
                "--log-file=/var/log/openvswitch/ovs-vswitchd.log",
            ],
        ]
    raise KeyError(daemon)


def daemon_pid(paths: LabPaths, host: str, daemon: str, namespace_ino: int | None) -> int | None:
    """The pid of a running daemon of ``host``, else None."""
    pid_dir, pid_name = _PIDFILES[daemon]
    pid = frr.read_pid(paths.host_dir(host, pid_dir) / pid_name)
    return pid if pid is not None and frr.pid_in_namespace(pid, namespace_ino, daemon[:15]) else None


def daemon_pids(paths: LabPaths, host: str, namespace_ino: int | None) -> dict[str, int | None]:
    return {d: daemon_pid(paths, host, d, namespace_ino) for d in DAEMONS}


def start_commands(tools: Tools, paths: LabPaths, host: HostPlan, namespace_ino: int | None) -> list[list[str]]:
    """What to run in the host to start its missing daemons, in order (not sshd)."""
    running = daemon_pids(paths, host.name, namespace_ino)
    commands: list[list[str]] = []
    for d in DAEMONS:
        if running[d] is None:
            commands += daemon_argv(tools, d, host)
    return commands


async def _unix_answers(path: Path) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def daemons_ready(paths: LabPaths, host: str) -> bool:
    """libvirtd and ovsdb-server accept connections on their unix sockets."""
    return await _unix_answers(paths.libvirt_socket(host)) and await _unix_answers(paths.ovs_db_socket(host))
