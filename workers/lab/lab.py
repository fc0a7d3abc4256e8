"""``lintas lab up|down|status``: the spine-leaf fabric of an infra repo, on this machine.

    state = await lab_up(settings, Path("gitops-repo-template"))   # idempotent: repairs
    for st in await lab_status(settings): print(st.name, st.healthy)
    facts = lab_device_facts(settings, "leaf-01")   # what the deploy driver needs
    await lab_down(settings)                          # removes everything, even after a crash

One lab per machine: namespace names and the management subnet are machine-wide, so
``up`` refuses while a lab of another ``LINTAS_HOME`` is up, and ``down`` removes every
``lx-*`` namespace and ``lxm*`` root link whoever made them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.infra_repo import TEMPLATE_DIR
from engine.settings import Settings
from workers.lab import frr, netns, ssh
from workers.lab.cmd import LabError, Tools, find_tools, gather_limited, run
from workers.lab.paths import DEVICE_FRR_ETC, DEVICE_FRR_LOG, DEVICE_FRR_RUN, LabPaths
from workers.lab.state import LabState, load_state, read_owner, save_state, state_from_plan, write_owner
from workers.lab.topology import SSH_PORT, LabPlan, SwitchPlan, plan_lab
from workers.model import load_model

NSEXEC = Path(__file__).resolve().with_name("nsexec.py")
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
PARALLEL = 16
READY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """How to reach one lab switch, for the napalm driver and tests."""

    name: str
    namespace: str
    mgmt_ip: str  # address only: "10.255.0.21"
    ssh_port: int
    username: str
    key_file: Path
    known_hosts: Path
    vty_socket_dir: Path  # host path of the switch's /run/frr
    config_dir: Path  # host path of the switch's /etc/frr
    log_dir: Path  # host path of the switch's /var/log/frr
    device_config_dir: str = DEVICE_FRR_ETC  # the same directories as seen over SSH
    device_vty_socket_dir: str = DEVICE_FRR_RUN
    device_log_dir: str = DEVICE_FRR_LOG


@dataclass(slots=True)
class DeviceStatus:
    name: str
    kind: str  # "switch" | "host"
    namespace: str
    mgmt_ip: str | None
    namespace_present: bool
    daemons: dict[str, int | None] = field(default_factory=dict)  # name -> pid when running
    sshd: int | None = None
    mgmt_reachable: bool | None = None
    bgp: dict[str, dict[str, str]] | None = None  # address family -> {peer: state}
    error: str | None = None

    @property
    def healthy(self) -> bool:
        if self.kind == "host":
            return self.namespace_present
        return (self.namespace_present and all(p is not None for p in self.daemons.values())
                and self.sshd is not None and bool(self.mgmt_reachable))

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name, "kind": self.kind, "namespace": self.namespace, "mgmt_ip": self.mgmt_ip,
            "namespace_present": self.namespace_present, "daemons": self.daemons, "sshd": self.sshd,
            "mgmt_reachable": self.mgmt_reachable, "bgp": self.bgp, "error": self.error, "healthy": self.healthy,
        }


@dataclass(frozen=True, slots=True)
class DownReport:
    namespaces: int
    processes: int
    root_links: int
    files: list[str]


# -- up --------------------------------------------------------------------------------------


async def lab_up(settings: Settings, repo: Path | None = None, *, tools: Tools | None = None) -> LabState:
    """Build (or repair) the lab of ``repo`` (default: the built-in template); returns its state."""
    tools = tools or find_tools()
    paths = LabPaths(settings.home)
    with _exclusive(paths):
        return await _lab_up(tools, paths, (repo or TEMPLATE_DIR).resolve())


async def _lab_up(tools: Tools, paths: LabPaths, repo: Path) -> LabState:
    model = await asyncio.to_thread(load_model, repo)
    plan = plan_lab(model)
    if not plan.switches:
        raise LabError(f"{repo} has no FRR switch to build a lab from")
    await _check_owner(tools, paths)
    await netns.check_mgmt_subnet(tools, plan)

    previous = load_state(paths)
    state = state_from_plan(plan, paths, repo, frr.DAEMONS)
    if previous is not None:
        state.created_at = previous.created_at
        state.created_paths = previous.created_paths
    paths.lab_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths.lab_dir.chmod(0o700)
    write_owner(paths)
    save_state(paths, state)  # the intent: `down` after a crash from here on knows everything

    # converge from a previous lab (another model, or this one changed): rebuild what differs
    before = previous.fingerprints if previous else {}
    stale = [n for n in await netns.lab_namespaces(tools)
             if n not in set(plan.namespaces) or before.get(n, state.fingerprints[n]) != state.fingerprints[n]]
    if previous is not None and previous.mgmt_gateway != plan.mgmt_gateway:
        await netns.remove(tools, [], root_links=True)  # the bridge is rebuilt with the new gateway
    if stale:
        inodes = set(netns.namespace_inodes(stale))
        await netns.kill_namespace_processes(stale)
        await netns.remove(tools, stale, root_links=False)
        await netns.kill_namespace_processes(stale, inodes=inodes)
        for n in stale:
            shutil.rmtree(paths.run_root / n, ignore_errors=True)

    # sshd's privilege separation directory, and /run/frr as a mount point: made by the
    # distribution's init scripts, which do not run here; `down` removes them if the lab made them
    for d in (ssh.PRIVSEP_DIR, Path(DEVICE_FRR_RUN)):
        if not d.exists():
            d.mkdir(mode=0o755, parents=True)
            if d == Path(DEVICE_FRR_RUN):
                shutil.chown(d, "frr", "frr")
            state.created_paths.append(str(d))
            save_state(paths, state)

    await ssh.ensure_keypair(tools, paths.key, "lintas-lab")
    await netns.build(tools, plan)
    await gather_limited(PARALLEL, (_start_switch(tools, paths, sw) for sw in plan.switches))
    ssh.write_known_hosts(paths, plan)
    await _wait_ready(paths, plan)
    state.phase = "up"
    save_state(paths, state)
    return state


@contextlib.contextmanager
def _exclusive(paths: LabPaths) -> Iterator[None]:
    """One `lab up`/`lab down` at a time per LINTAS_HOME (flock on the home directory)."""
    paths.home.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.home, os.O_RDONLY)  # not inherited by the daemons (O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(f"another `lintas lab` command is running for LINTAS_HOME={paths.home}") from None
        yield
    finally:
        os.close(fd)


async def _check_owner(tools: Tools, paths: LabPaths) -> None:
    owner = read_owner(paths)
    if owner is not None and owner != str(paths.home) and await netns.lab_namespaces(tools):
        raise LabError(
            f"a lab of LINTAS_HOME={owner} is up on this machine (one lab per machine): "
            f"run `LINTAS_HOME={owner} lintas lab down` first (any `lintas lab down` removes it)"
        )


async def _start_switch(tools: Tools, paths: LabPaths, sw: SwitchPlan) -> None:
    frr.write_day0(paths, sw.name)
    await ssh.write_device_files(tools, paths, sw)
    ino = frr.netns_inode(sw.namespace)
    commands = [frr.daemon_argv(tools, d) for d in frr.DAEMONS if frr.daemon_pid(paths, sw.name, d, ino) is None]
    if _sshd_pid(paths, sw.name, ino) is None:
        commands.append(ssh.sshd_argv(tools, paths, sw))
    if not commands:
        return
    argv = [tools.ip, "netns", "exec", sw.namespace, sys.executable, "-I", "-S", str(NSEXEC), "--hostname", sw.name]
    for src, dst in paths.binds(sw.name):
        argv += ["--bind", src, dst]
    argv.append(json.dumps(commands))
    try:
        await run(argv, env=CLEAN_ENV, timeout=60)
    except LabError as exc:
        raise LabError(f"{sw.name}: could not start its daemons: {exc} (FRR log: {paths.frr_log(sw.name)})") from exc


def _sshd_pid(paths: LabPaths, device: str, ino: int | None) -> int | None:
    pid = frr.read_pid(paths.device_dir(device) / "sshd.pid")
    return pid if pid is not None and frr.pid_in_namespace(pid, ino, "sshd") else None


async def _ssh_banner(address: str, timeout: float = 1.0) -> bool:
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


async def _wait_ready(paths: LabPaths, plan: LabPlan, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Every switch: FRR vty sockets present and sshd answering on its management address."""
    deadline = time.monotonic() + timeout_s
    pending = {sw.name: sw for sw in plan.switches}
    while pending:

        async def ready(sw: SwitchPlan) -> bool:
            return frr.daemons_ready(paths, sw.name) and await _ssh_banner(sw.mgmt_address)

        done = await asyncio.gather(*(ready(sw) for sw in pending.values()))
        for name, ok in zip(list(pending), done, strict=True):
            if ok:
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise LabError(f"not ready after {timeout_s:g} s (FRR sockets or sshd): {', '.join(sorted(pending))}")
        await asyncio.sleep(0.1)


# -- down ------------------------------------------------------------------------------------


async def lab_down(settings: Settings, *, tools: Tools | None = None) -> DownReport:
    """Remove every namespace, link, process and file of the lab (state file or not)."""
    tools = tools or find_tools(teardown=True)
    paths = LabPaths(settings.home)
    with _exclusive(paths):
        return await _lab_down(tools, paths)


async def _lab_down(tools: Tools, paths: LabPaths) -> DownReport:
    state = load_state(paths)
    namespaces = sorted(set(state.namespaces if state else []) | set(await netns.lab_namespaces(tools)))
    inodes = set(netns.namespace_inodes(namespaces))
    killed = await netns.kill_namespace_processes(namespaces)
    counts = await netns.remove(tools, namespaces)
    killed += await netns.kill_namespace_processes(namespaces, inodes=inodes)  # a straggler of a crashed `up`
    killed += await netns.kill_pids(netns.orphan_pids(paths.run_root.name))  # namespaces that lost their name
    removed = _remove_files(paths, state)
    return DownReport(namespaces=counts["namespaces"], processes=killed, root_links=counts["root_links"],
                      files=removed)


def _remove_files(paths: LabPaths, state: LabState | None) -> list[str]:
    removed: list[str] = []
    for tree in (paths.run_root, paths.lab_dir):
        if tree.is_dir():
            shutil.rmtree(tree)
            removed.append(str(tree))
    for made in reversed(state.created_paths if state else []):
        with contextlib.suppress(OSError):
            os.rmdir(made)  # only when empty: another sshd or FRR may use it by now
            removed.append(made)
    return removed


# -- status and facts ------------------------------------------------------------------------


def _require_state(settings: Settings) -> LabState:
    state = load_state(LabPaths(settings.home))
    if state is None:
        raise LabError(f"no lab is up for LINTAS_HOME={settings.home} (run `lintas lab up`)")
    return state


async def _ping(tools: Tools, address: str) -> bool:
    res = await run([tools.ping, "-n", "-q", "-c", "1", "-W", "1", address], check=False, timeout=5)
    return res.returncode == 0


async def _switch_status(tools: Tools, paths: LabPaths, sw: SwitchPlan, present: set[str]) -> DeviceStatus:
    st = DeviceStatus(sw.name, "switch", sw.namespace, sw.mgmt_address, sw.namespace in present)
    ino = frr.netns_inode(sw.namespace) if st.namespace_present else None
    st.daemons = {d: frr.daemon_pid(paths, sw.name, d, ino) for d in frr.DAEMONS}
    st.sshd = _sshd_pid(paths, sw.name, ino)
    st.mgmt_reachable = await _ping(tools, sw.mgmt_address)
    if st.daemons.get("bgpd") is not None:
        try:
            st.bgp = frr.bgp_peers(await frr.vtysh_json(sw.name, "show bgp summary json", timeout=10))
        except LabError as exc:
            st.error = str(exc)
    return st


async def lab_status(settings: Settings, *, tools: Tools | None = None) -> list[DeviceStatus]:
    """Per switch: namespace, FRR daemons and sshd (pids), management ping, BGP sessions; per host: namespace."""
    tools = tools or find_tools()
    paths = LabPaths(settings.home)
    state = _require_state(settings)
    present = set(await netns.list_namespaces(tools))
    switches = [_plan_switch(s.name, state) for s in state.switches.values()]
    out = list(await gather_limited(PARALLEL, (_switch_status(tools, paths, sw, present) for sw in switches)))
    for h in state.hosts.values():
        out.append(DeviceStatus(h.name, "host", h.namespace, None, h.namespace in present))
    return out


def _plan_switch(name: str, state: LabState) -> SwitchPlan:
    r = state.switches[name]
    return SwitchPlan(r.name, r.role, r.namespace, r.mgmt_ip, r.mgmt_veth)


def lab_facts(settings: Settings) -> dict[str, DeviceFacts]:
    """Facts of every switch of the lab that is up (from ``state.json``; no root needed)."""
    paths = LabPaths(settings.home)
    state = _require_state(settings)
    return {
        r.name: DeviceFacts(
            name=r.name, namespace=r.namespace, mgmt_ip=str(ipaddress.ip_interface(r.mgmt_ip).ip),
            ssh_port=SSH_PORT, username=ssh.USER, key_file=paths.key, known_hosts=paths.known_hosts,
            vty_socket_dir=paths.frr_run(r.name), config_dir=paths.frr_etc(r.name), log_dir=paths.frr_log(r.name),
        )
        for r in state.switches.values()
    }


def lab_device_facts(settings: Settings, device: str) -> DeviceFacts:
    facts = lab_facts(settings)
    if device not in facts:
        raise LabError(f"{device!r} is not a switch of the lab (switches: {', '.join(sorted(facts))})")
    return facts[device]
