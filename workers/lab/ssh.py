"""SSH on a lab switch or host: the lab key pair, host keys, sshd_config, known_hosts.

Each switch and each hypervisor host runs its own sshd in its namespaces, listening
only on its management address, port 22, so every session lives in the node's network,
UTS and mount namespaces (``virsh`` over SSH finds the host's own libvirtd). Login: user
``root`` with the lab key only (no passwords, no keyboard-interactive, no forwarding of
any kind); root because the deploy driver changes interfaces, FRR, OVS and libvirt. The
lab writes ``keys/known_hosts`` with every node's host key, so clients check host keys
strictly (``StrictHostKeyChecking=yes``) and never accept an unknown one.

``StrictModes no``: sshd's ownership check walks every parent directory, which fails
under a world-writable ``/tmp`` (tests). The files are protected instead by the lab
directory itself (mode 0700, owned by root) and by their own modes (0600/0644).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from pathlib import Path

import lintas.workers.lab.frr as frr
from lintas.workers.lab.cmd import LabError, Tools, run
from lintas.workers.lab.paths import LabPaths
from lintas.workers.lab.topology import SSH_PORT, LabPlan, Node
from lintas.workers.reach.netns import open_socket

USER = "root"
HOST_KEY = "ssh_host_ed25519_key"
PRIVSEP_DIR = Path("/run/sshd")


def _prepare_keypair(key: Path) -> bool:
    """False when the pair exists; else clear a half-written one and make the directory."""
    pub = key.with_suffix(".pub")
    if key.exists() and pub.exists():
        return False
    for f in (key, pub):
        f.unlink(missing_ok=True)
    key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return True


async def ensure_keypair(tools: Tools, key: Path, comment: str) -> bool:
    """Create an ed25519 key pair at ``key`` unless it exists; True when created."""
    if not _prepare_keypair(key):
        return False
    await run([tools.ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
    os.chmod(key, 0o600)
    return True


def listen_address(sw: Node) -> str:
    ip = ipaddress.ip_interface(sw.mgmt_ip).ip
    return f"[{ip}]:{SSH_PORT}" if ip.version == 6 else f"{ip}:{SSH_PORT}"


def sshd_config(paths: LabPaths, sw: Node) -> str:
    d = paths.device_dir(sw.name)
    return f"""# Written by `lintas lab up`: sshd of lab node {sw.name} (network namespace {sw.namespace}).
ListenAddress {listen_address(sw)}
HostKey {d / HOST_KEY}
PidFile {d / "sshd.pid"}
AuthorizedKeysFile {d / "authorized_keys"}
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {USER}
UsePAM no
StrictModes no
PermitUserEnvironment no
AllowTcpForwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
GatewayPorts no
PermitTunnel no
X11Forwarding no
PrintMotd no
PrintLastLog no
UseDNS no
MaxStartups 64:30:256
MaxSessions 64
ClientAliveInterval 10
ClientAliveCountMax 3
LogLevel INFO
Subsystem sftp internal-sftp
"""


async def write_device_files(tools: Tools, paths: LabPaths, sw: Node) -> None:
    """Host key (kept once made), sshd_config and authorized_keys (rewritten) of one switch or host."""
    d = paths.device_dir(sw.name)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    await ensure_keypair(tools, d / HOST_KEY, f"{sw.name}-lab-host-key")
    (d / "sshd_config").write_text(sshd_config(paths, sw))
    ak = d / "authorized_keys"
    ak.write_text("no-port-forwarding,no-agent-forwarding,no-X11-forwarding " + paths.pubkey.read_text().strip() + "\n")
    ak.chmod(0o600)


def host_key_line(paths: LabPaths, sw: Node) -> str:
    pub = (paths.device_dir(sw.name) / (HOST_KEY + ".pub")).read_text().split()
    if len(pub) < 2:
        raise LabError(f"{sw.name}: malformed host key {paths.device_dir(sw.name) / (HOST_KEY + '.pub')}")
    ip = ipaddress.ip_interface(sw.mgmt_ip).ip
    host = f"[{ip}]:{SSH_PORT}" if SSH_PORT != 22 else str(ip)
    return f"{host},{sw.name} {pub[0]} {pub[1]}"


def write_known_hosts(paths: LabPaths, plan: LabPlan) -> Path:
    lines = [host_key_line(paths, node) for node in plan.nodes]
    tmp = paths.known_hosts.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.chmod(0o644)
    os.replace(tmp, paths.known_hosts)
    return paths.known_hosts


def sshd_argv(tools: Tools, paths: LabPaths, sw: Node) -> list[str]:
    d = paths.device_dir(sw.name)
    return [tools.sshd, "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log")]


def sshd_pid(paths: LabPaths, name: str, namespace_ino: int | None) -> int | None:
    """The pid of the running sshd of a switch or host, else None."""
    pid = frr.read_pid(paths.device_dir(name) / "sshd.pid")
    return pid if pid is not None and frr.pid_in_namespace(pid, namespace_ino, "sshd") else None


def _banner_in(namespace: str, address: str, timeout: float) -> bool:
    try:
        with open_socket(address, SSH_PORT, namespace=namespace, timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


async def ssh_banner(address: str, timeout: float = 1.0, *, namespace: str | None = None) -> bool:
    """True when an SSH server answers with its banner on ``address``, port 22 (seen from
    ``namespace``, a twin's management namespace, when given)."""
    if namespace is not None:
        return await asyncio.to_thread(_banner_in, namespace, address, timeout)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, SSH_PORT), timeout)
    except (OSError, TimeoutError):
        return False
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
        return line.startswith(b"SSH-2.0-")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
