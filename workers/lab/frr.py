"""FRR on a lab switch: day-0 files, daemon command lines, process checks, vtysh.

Daemons: zebra, bgpd and bfdd (the rendered config has ``neighbor ... bfd``; bfdd
costs about 5 MB and is started whatever the model says, so a later change that
turns BFD on just works). staticd is not started: no rendered config has static routes;
add it to :data:`DAEMONS` when one does. Each daemon runs as user ``frr`` with the
standard FRR paths of the switch's mount namespace (see :mod:`workers.lab.paths`),
``-P 0`` (no TCP vty: the CLI is reached through SSH + vtysh only) and bfdd with its
control socket in the switch's own ``/run/frr``.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
from pathlib import Path
from typing import Any

from lintas.workers.lab.cmd import FRR_GROUP, FRR_USER, LabError, Tools, run
from lintas.workers.lab.paths import DEVICE_FRR_ETC, DEVICE_FRR_LOG, DEVICE_FRR_RUN, RUN_ROOT, LabPaths
from lintas.workers.lab.topology import namespace_name

DAEMONS: tuple[str, ...] = ("zebra", "bgpd", "bfdd")
VTYSH = "/usr/bin/vtysh"


def day0_config(hostname: str) -> str:
    """frr.conf of a switch at day 0: no routing, the pipeline's deploy configures the rest."""
    return (
        "frr defaults datacenter\n"
        f"hostname {hostname}\n"
        f"log file {DEVICE_FRR_LOG}/frr.log informational\n"
        "service integrated-vtysh-config\n"
        "!\n"
    )


VTYSH_CONF = "service integrated-vtysh-config\n"


def daemons_file() -> str:
    """/etc/frr/daemons of a lab switch: documents what runs (the lab starts them itself)."""
    names = (
        "bgpd",
        "ospfd",
        "ospf6d",
        "ripd",
        "ripngd",
        "isisd",
        "pimd",
        "ldpd",
        "nhrpd",
        "eigrpd",
        "babeld",
        "sharpd",
        "pbrd",
        "bfdd",
        "fabricd",
        "vrrpd",
        "pathd",
        "staticd",
    )
    lines = [f"{n}={'yes' if n in DAEMONS else 'no'}" for n in names]
    return "# lab switch: started by `lintas lab up`, not by frrinit.sh\n" + "\n".join(lines) + "\nvtysh_enable=yes\n"


def write_day0(paths: LabPaths, device: str) -> None:
    """Create the switch's FRR directories; write frr.conf only if missing (a deployed config is kept)."""
    uid, gid = pwd.getpwnam(FRR_USER).pw_uid, grp.getgrnam(FRR_GROUP).gr_gid
    run_dir = paths.run_dir(device)
    run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    for d, mode in ((paths.frr_etc(device), 0o750), (paths.frr_run(device), 0o755), (paths.frr_log(device), 0o750)):
        d.mkdir(mode=mode, exist_ok=True)
        os.chown(d, uid, gid)
        d.chmod(mode)
    files = {
        "frr.conf": (day0_config(device), False),
        "vtysh.conf": (VTYSH_CONF, True),
        "daemons": (daemons_file(), True),
    }
    for name, (text, overwrite) in files.items():
        f = paths.frr_etc(device) / name
        if overwrite or not f.exists():
            f.write_text(text)
            os.chown(f, uid, gid)
            f.chmod(0o640)


def daemon_argv(tools: Tools, daemon: str) -> list[str]:
    """Command line of one daemon, in the paths the switch's mount namespace shows."""
    argv = [
        tools.daemon(daemon),
        "-d",
        "-P",
        "0",
        "-u",
        FRR_USER,
        "-g",
        FRR_GROUP,
        "-f",
        f"{DEVICE_FRR_ETC}/frr.conf",
        "-i",
        f"{DEVICE_FRR_RUN}/{daemon}.pid",
        "--vty_socket",
        DEVICE_FRR_RUN,
        "-z",
        f"{DEVICE_FRR_RUN}/zserv.api",
    ]
    if daemon == "zebra":
        argv += ["-s", "90000000"]  # netlink receive buffer, as Debian's /etc/frr/daemons
    if daemon == "bfdd":
        argv += ["--bfdctl", f"{DEVICE_FRR_RUN}/bfdd.sock"]
    return argv


def netns_inode(namespace: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{namespace}").st_ino
    except OSError:
        return None


def pid_in_namespace(pid: int, namespace_ino: int | None, comm: str) -> bool:
    """True when ``pid`` is alive, is ``comm`` and lives in the network namespace ``namespace_ino``."""
    if namespace_ino is None:
        return False
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != comm:
            return False
        return os.stat(f"/proc/{pid}/ns/net").st_ino == namespace_ino
    except OSError:
        return False


def read_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def daemon_pid(paths: LabPaths, device: str, daemon: str, namespace_ino: int | None) -> int | None:
    """The pid of a running daemon of ``device``, else None."""
    pid = read_pid(paths.frr_run(device) / f"{daemon}.pid")
    return pid if pid is not None and pid_in_namespace(pid, namespace_ino, daemon) else None


def daemons_ready(paths: LabPaths, device: str) -> bool:
    run_dir = paths.frr_run(device)
    return all((run_dir / f"{d}.vty").exists() for d in DAEMONS) and (run_dir / "zserv.api").exists()


def vty_socket_dir(device: str) -> Path:
    """Host path of a lab switch's vty sockets (independent of ``LINTAS_HOME``)."""
    return RUN_ROOT / namespace_name(device) / "run"


async def vtysh(device: str, *commands: str, timeout: float = 30.0, vtysh_bin: str = VTYSH) -> str:
    """Run vtysh commands on a lab switch from the root namespace; raise LabError on failure."""
    sock = vty_socket_dir(device)
    if not sock.is_dir():
        raise LabError(f"{device} is not a running lab switch (no {sock})")
    argv = [vtysh_bin, "--vty_socket", str(sock), "--config_dir", str(sock.parent / "etc")]
    for c in commands:
        argv += ["-c", c]
    return (await run(argv, timeout=timeout)).stdout


async def vtysh_json(device: str, command: str, timeout: float = 30.0) -> Any:
    out = await vtysh(device, command, timeout=timeout)
    try:
        return json.loads(out) if out.strip() else {}
    except json.JSONDecodeError as exc:
        raise LabError(f"{device}: `{command}` did not return JSON: {out[:200]!r}") from exc


def bgp_peers(summary: Any) -> dict[str, dict[str, str]]:
    """``show bgp summary json`` -> {address family: {peer: state}}."""
    out: dict[str, dict[str, str]] = {}
    if not isinstance(summary, dict):
        return out
    for af, body in summary.items():
        peers = body.get("peers") if isinstance(body, dict) else None
        if isinstance(peers, dict):
            out[af] = {p: str(v.get("state", "?")) for p, v in peers.items() if isinstance(v, dict)}
    return out
