"""``lintas lab up|down|status``: the spine-leaf fabric and hypervisors of an infra repo, on this machine.

    state = await lab_up(settings, Path("gitops-repo-template"))   # idempotent: repairs
    for st in await lab_status(settings): print(st.name, st.healthy)
    facts = lab_device_facts(settings, "leaf-01")   # what the deploy driver needs
    host = lab_host_facts(settings, "osc-01")       # libvirt socket, OVSDB remote, SSH
    await lab_down(settings)                          # removes everything, even after a crash

Switches run FRR and sshd (:mod:`workers.lab.frr`); hypervisor hosts run libvirtd,
virtlogd, ovsdb-server, ovs-vswitchd and sshd (:mod:`workers.lab.hypervisor`), and on
``openstack`` hosts the lab plays nova (:mod:`workers.lab.nova`).

One lab per machine: namespace names and the management subnet are machine-wide, so
``up`` refuses while a lab of another ``LINTAS_HOME`` is up, and ``down`` removes every
``lx-*`` namespace and ``lxm*`` root link whoever made them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import lintas.workers.lab.frr as frr
import lintas.workers.lab.hypervisor as hypervisor
import lintas.workers.lab.netns as netns
import lintas.workers.lab.nova as nova
import lintas.workers.lab.ssh as ssh
from lintas.engine.infra_repo import TEMPLATE_DIR
from lintas.engine.settings import Settings
from lintas.workers.lab.cmd import CLEAN_ENV, LabError, Tools, find_tools, gather_limited, nsexec_argv, run
from lintas.workers.lab.paths import DEVICE_FRR_ETC, DEVICE_FRR_LOG, DEVICE_FRR_RUN, LabPaths
from lintas.workers.lab.register import register_lab, unregister_lab
from lintas.workers.lab.state import LabState, load_state, read_owner, save_state, state_from_plan, write_owner
from lintas.workers.lab.topology import SSH_PORT, HostPlan, LabPlan, SwitchPlan, plan_lab
from lintas.workers.lab.twin_life import sweep_twins, twin_statuses
from lintas.workers.model import load_model
from lintas.workers.model.model import InfraModel

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


@dataclass(frozen=True, slots=True)
class HostFacts:
    """How to reach one lab hypervisor host, for the host deployer and tests (paths are host paths)."""

    name: str
    namespace: str
    kind: str  # "kvm" | "openstack"
    mgmt_ip: str  # address only: "10.255.0.101"
    ssh_port: int
    username: str
    key_file: Path
    known_hosts: Path
    libvirt_socket: Path  # the host's /run/libvirt/libvirt-sock
    libvirt_ro_socket: Path
    ovsdb: str  # "tcp:10.255.0.101:6640"
    ovs_run_dir: Path  # the host's /run/openvswitch (db.sock, *.ctl)
    domain_type: str  # the host's modelled type ("kvm" or "qemu"); "qemu" where /dev/kvm is not usable

    @property
    def libvirt_uri(self) -> str:
        """libvirt URI of the host's libvirtd from the root namespace."""
        return f"qemu:///system?socket={self.libvirt_socket}"

    @property
    def ovsdb_socket(self) -> str:
        """OVSDB remote of the host's ovsdb-server from the root namespace: ``unix:<its db.sock>``."""
        return f"unix:{self.ovs_run_dir / 'db.sock'}"


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
        return (
            self.namespace_present
            and all(p is not None for p in self.daemons.values())
            and self.sshd is not None
            and bool(self.mgmt_reachable)
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "namespace": self.namespace,
            "mgmt_ip": self.mgmt_ip,
            "namespace_present": self.namespace_present,
            "daemons": self.daemons,
            "sshd": self.sshd,
            "mgmt_reachable": self.mgmt_reachable,
            "bgp": self.bgp,
            "error": self.error,
            "healthy": self.healthy,
        }


@dataclass(frozen=True, slots=True)
class DownReport:
    namespaces: int
    processes: int
    root_links: int
    files: list[str]
    twins: int = 0  # dead twins removed with it


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
    stale = [
        n
        for n in await netns.lab_namespaces(tools)
        if n not in set(plan.namespaces) or before.get(n, state.fingerprints[n]) != state.fingerprints[n]
    ]
    if previous is not None and previous.mgmt_gateway != plan.mgmt_gateway:
        await netns.remove(tools, [], root_links=True)  # the bridge is rebuilt with the new gateway
    if stale:
        inodes = set(netns.namespace_inodes(stale))
        await netns.kill_namespace_processes(stale)
        await netns.remove(tools, stale, root_links=False)
        await netns.kill_namespace_processes(stale, inodes=inodes)
        for n in stale:
            shutil.rmtree(paths.run_root / n, ignore_errors=True)

    # sshd's privilege separation directory, /run/frr and the hosts' libvirt and OVS directories
    # as mount points: made by the distribution's packages and init scripts, which may not have
    # run here; `down` removes them if the lab made them
    wanted = [ssh.PRIVSEP_DIR, Path(DEVICE_FRR_RUN)] + (hypervisor.mount_points() if plan.hosts else [])
    for d in wanted:
        if not d.exists():
            d.mkdir(mode=0o755, parents=True)
            if d == Path(DEVICE_FRR_RUN):
                shutil.chown(d, "frr", "frr")
            state.created_paths.append(str(d))
            save_state(paths, state)

    await ssh.ensure_keypair(tools, paths.key, "lintas-lab")
    await netns.build(tools, plan)
    await gather_limited(
        PARALLEL,
        [
            *(start_switch(tools, paths, sw) for sw in plan.switches),
            *(start_host(tools, paths, h) for h in plan.hosts),
        ],
    )
    ssh.write_known_hosts(paths, plan)
    await wait_ready(paths, plan)
    await play_nova(tools, paths, model, plan)
    state.phase = "up"
    save_state(paths, state)
    register_lab(paths, state)  # its credential source: only the targets it built, by name and address
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


async def start_switch(tools: Tools, paths: LabPaths, sw: SwitchPlan) -> None:
    """Start whatever of a switch's FRR daemons and sshd is not running (the lab's or a twin's)."""
    frr.write_day0(paths, sw.name)
    await ssh.write_device_files(tools, paths, sw)
    ino = frr.netns_inode(sw.namespace)
    commands = [frr.daemon_argv(tools, d) for d in frr.DAEMONS if frr.daemon_pid(paths, sw.name, d, ino) is None]
    if ssh.sshd_pid(paths, sw.name, ino) is None:
        commands.append(ssh.sshd_argv(tools, paths, sw))
    if not commands:
        return
    try:
        await run(nsexec_argv(tools, sw.namespace, sw.name, paths.binds(sw.name), commands), env=CLEAN_ENV, timeout=60)
    except LabError as exc:
        raise LabError(f"{sw.name}: could not start its daemons: {exc} (FRR log: {paths.frr_log(sw.name)})") from exc


async def start_host(tools: Tools, paths: LabPaths, host: HostPlan) -> None:
    """Start whatever of a host's libvirt, OVS daemons and sshd is not running (the lab's or a twin's)."""
    await hypervisor.write_host_files(tools, paths, host)
    await ssh.write_device_files(tools, paths, host)
    ino = frr.netns_inode(host.namespace)
    commands = hypervisor.start_commands(tools, paths, host, ino)
    if ssh.sshd_pid(paths, host.name, ino) is None:
        commands.append(ssh.sshd_argv(tools, paths, host))
    if not commands:
        return
    try:
        await run(
            nsexec_argv(tools, host.namespace, host.name, paths.host_binds(host.name), commands),
            env=CLEAN_ENV,
            timeout=60,
        )
    except LabError as exc:
        raise LabError(
            f"{host.name}: could not start its daemons: {exc} (logs: {paths.run_dir(host.name)}/libvirt-log, ovs-log)"
        ) from exc


async def play_nova(tools: Tools, paths: LabPaths, model: InfraModel, plan: LabPlan) -> None:
    """On every openstack host of ``plan`` (the lab's or a twin's): br-int and the domains nova would have defined."""
    await asyncio.gather(*(nova.ensure_nova(tools, paths, model, h) for h in plan.hosts if h.kind == "openstack"))


async def wait_ready(paths: LabPaths, plan: LabPlan, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Every switch: FRR vty sockets present; every host: libvirtd and ovsdb-server answering on
    their unix sockets; every node: sshd answering on its management address (from the plan's
    management namespace when it has one)."""
    deadline = time.monotonic() + timeout_s
    pending: dict[str, SwitchPlan | HostPlan] = {n.name: n for n in plan.nodes}
    while pending:

        async def ready(node: SwitchPlan | HostPlan) -> bool:
            if isinstance(node, SwitchPlan):
                daemons = frr.daemons_ready(paths, node.name)
            else:
                daemons = await hypervisor.daemons_ready(paths, node.name)
            return daemons and await ssh.ssh_banner(node.mgmt_address, namespace=plan.mgmt_namespace)

        done = await asyncio.gather(*(ready(n) for n in pending.values()))
        for name, ok in zip(list(pending), done, strict=True):
            if ok:
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise LabError(f"not ready after {timeout_s:g} s (daemon sockets or sshd): {', '.join(sorted(pending))}")
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
    unregister_lab(paths)  # first: no deploy takes the lab's login for what is being removed
    namespaces = sorted(set(state.namespaces if state else []) | set(await netns.lab_namespaces(tools)))
    inodes = set(netns.namespace_inodes(namespaces))
    killed = await netns.kill_namespace_processes(namespaces)
    counts = await netns.remove(tools, namespaces)
    killed += await netns.kill_namespace_processes(namespaces, inodes=inodes)  # a straggler of a crashed `up`
    killed += await netns.kill_pids(netns.orphan_pids(paths.run_root.name))  # namespaces that lost their name
    twins = await sweep_twins(tools)  # dead twins' leftovers; live twins stay
    removed = _remove_files(paths, state, keep_system_dirs=bool(twin_statuses()))
    return DownReport(
        namespaces=counts["namespaces"] + sum(t.namespaces for t in twins),
        processes=killed + sum(t.processes for t in twins),
        root_links=counts["root_links"],
        files=removed,
        twins=len(twins),
    )


def _remove_files(paths: LabPaths, state: LabState | None, *, keep_system_dirs: bool = False) -> list[str]:
    removed: list[str] = []
    for tree in (paths.run_root, paths.lab_dir):
        if tree.is_dir():
            shutil.rmtree(tree)
            removed.append(str(tree))
    if keep_system_dirs:  # a live twin's sshd and FRR still use /run/sshd and /run/frr
        return removed
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
    st.sshd = ssh.sshd_pid(paths, sw.name, ino)
    st.mgmt_reachable = await _ping(tools, sw.mgmt_address)
    if st.daemons.get("bgpd") is not None:
        try:
            st.bgp = frr.bgp_peers(await frr.vtysh_json(sw.name, "show bgp summary json", timeout=10))
        except LabError as exc:
            st.error = str(exc)
    return st


async def _host_status(tools: Tools, paths: LabPaths, host: HostPlan, present: set[str]) -> DeviceStatus:
    st = DeviceStatus(host.name, "host", host.namespace, host.mgmt_address or None, host.namespace in present)
    ino = frr.netns_inode(host.namespace) if st.namespace_present else None
    st.daemons = hypervisor.daemon_pids(paths, host.name, ino)
    st.sshd = ssh.sshd_pid(paths, host.name, ino)
    st.mgmt_reachable = await _ping(tools, host.mgmt_address) if host.mgmt_address else False
    return st


async def lab_status(settings: Settings, *, tools: Tools | None = None) -> list[DeviceStatus]:
    """Per switch: namespace, FRR daemons and sshd (pids), management ping, BGP sessions; per host:
    namespace, libvirtd, virtlogd, ovsdb-server, ovs-vswitchd and sshd (pids), management ping."""
    tools = tools or find_tools()
    paths = LabPaths(settings.home)
    state = _require_state(settings)
    present = set(await netns.list_namespaces(tools))
    switches = [_plan_switch(s.name, state) for s in state.switches.values()]
    hosts = [_plan_host(h.name, state) for h in state.hosts.values()]
    return list(
        await gather_limited(
            PARALLEL,
            [
                *(_switch_status(tools, paths, sw, present) for sw in switches),
                *(_host_status(tools, paths, h, present) for h in hosts),
            ],
        )
    )


def _plan_switch(name: str, state: LabState) -> SwitchPlan:
    r = state.switches[name]
    return SwitchPlan(r.name, r.role, r.namespace, r.mgmt_ip, r.mgmt_veth)


def _plan_host(name: str, state: LabState) -> HostPlan:
    r = state.hosts[name]
    return HostPlan(r.name, r.namespace, r.nic, r.leaf, r.leaf_port, r.kind, r.mgmt_ip, r.mgmt_veth, r.domain_type)


def lab_facts(settings: Settings) -> dict[str, DeviceFacts]:
    """Facts of every switch of the lab that is up (from ``state.json``; no root needed)."""
    return switch_facts(LabPaths(settings.home), _require_state(settings))


def switch_facts(paths: LabPaths, state: LabState) -> dict[str, DeviceFacts]:
    """Facts of every switch of ``state`` (the lab's, or a twin's with its paths)."""
    return {
        r.name: DeviceFacts(
            name=r.name,
            namespace=r.namespace,
            mgmt_ip=str(ipaddress.ip_interface(r.mgmt_ip).ip),
            ssh_port=SSH_PORT,
            username=ssh.USER,
            key_file=paths.key,
            known_hosts=paths.known_hosts,
            vty_socket_dir=paths.frr_run(r.name),
            config_dir=paths.frr_etc(r.name),
            log_dir=paths.frr_log(r.name),
        )
        for r in state.switches.values()
    }


def lab_device_facts(settings: Settings, device: str) -> DeviceFacts:
    facts = lab_facts(settings)
    if device not in facts:
        raise LabError(f"{device!r} is not a switch of the lab (switches: {', '.join(sorted(facts))})")
    return facts[device]


def lab_hosts_facts(settings: Settings) -> dict[str, HostFacts]:
    """Facts of every hypervisor host of the lab that is up (from ``state.json``; no root needed)."""
    return host_facts(LabPaths(settings.home), _require_state(settings))


def host_facts(paths: LabPaths, state: LabState) -> dict[str, HostFacts]:
    """Facts of every hypervisor host of ``state`` (the lab's, or a twin's with its paths)."""
    kvm = hypervisor.domain_type() == "kvm"
    out: dict[str, HostFacts] = {}
    for r in state.hosts.values():
        h = _plan_host(r.name, state)
        out[h.name] = HostFacts(
            name=h.name,
            namespace=h.namespace,
            kind=h.kind,
            mgmt_ip=h.mgmt_address,
            ssh_port=SSH_PORT,
            username=ssh.USER,
            key_file=paths.key,
            known_hosts=paths.known_hosts,
            libvirt_socket=paths.libvirt_socket(h.name),
            libvirt_ro_socket=paths.libvirt_ro_socket(h.name),
            ovsdb=hypervisor.ovsdb_remote(h),
            ovs_run_dir=paths.ovs_run(h.name),
            domain_type=h.domain_type if kvm else "qemu",
        )
    return out


def lab_host_facts(settings: Settings, host: str) -> HostFacts:
    facts = lab_hosts_facts(settings)
    if host not in facts:
        raise LabError(f"{host!r} is not a host of the lab (hosts: {', '.join(sorted(facts)) or 'none'})")
    return facts[host]
