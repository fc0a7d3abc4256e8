"""Twins (issue 18, foundation): a throwaway, isolated instance of a model's switches beside the lab.

    record = await twin_up(settings, repo, name="try-vni")      # FRR + sshd per switch, in lt<hex>-*
    record = await twin_up(settings, repo, only=slice, hosts=frozenset({"kvm-uat-01"}))  # + hosts
    facts = twin_facts("try-vni")                              # the mgmt namespace, key, known_hosts
    sock = connect(facts.target("leaf-01"), 22, settings)      # workers.reach.netns, through lt<hex>-mgmt
    await twin_down(settings, "try-vni")
    await sweep_twins(tools)                                   # dead twins' leftovers (`lab down` does it)

A twin is named like the lab but with its own prefix (:func:`workers.lab.topology.twin_instance`,
``lt`` + 4 hex digits): its switches' namespaces ``lt3f2a-<switch>``, and its management bridge with
the management gateway address inside ``lt3f2a-mgmt``; its switches keep the modelled management
addresses (the production lab's) and are reached only through that namespace. Nothing of a twin is
in the root namespace. Its files are all under ``/run/lintas-twin/<prefix>/`` (:func:`twin_paths`);
its credentials are registered as ``$LINTAS_HOME/credentials.d/twin-<name>.json``, served only to
targets reached through its management namespace.

Hosts (``hosts=``) are built as the lab builds them (:func:`workers.lab.lab.start_host`: libvirtd,
virtlogd, ovsdb-server, ovs-vswitchd and sshd in ``lt3f2a-<host>`` with the twin's directories
bind-mounted, nova's domains on ``openstack`` hosts); each needs its uplink leaf in the twin. They
are reached from the root namespace only through their unix sockets under the twin's directory
(:attr:`TwinFacts.hosts`), and over SSH through the management namespace.

Its lifetime (holder, dead twins, the sweep) is :mod:`workers.lab.twin_life`: removing a twin kills
every process of its namespaces (QEMU, the host daemons included) and of its mounts.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import lintas.workers.lab.frr as frr
import lintas.workers.lab.hypervisor as hypervisor
import lintas.workers.lab.netns as netns
import lintas.workers.lab.ssh as ssh
from lintas.engine.infra_repo import TEMPLATE_DIR
from lintas.engine.settings import Settings
from lintas.workers.lab.cmd import LabError, Tools, find_tools, gather_limited
from lintas.workers.lab.lab import (
    PARALLEL,
    DeviceFacts,
    HostFacts,
    host_facts,
    play_nova,
    start_host,
    start_switch,
    switch_facts,
    wait_ready,
)
from lintas.workers.lab.paths import DEVICE_FRR_RUN, LabPaths, twin_paths
from lintas.workers.lab.register import register_twin
from lintas.workers.lab.state import load_state, save_state, state_from_plan
from lintas.workers.lab.topology import TWIN_TAG_HEX, Instance, LabPlan, plan_lab, twin_instance
from lintas.workers.lab.twin_life import (
    TwinDownReport,
    TwinRecord,
    find_twin,
    is_alive,
    locked,
    me,
    prefixes_anywhere,
    save_record,
    sweep_twins,
    teardown,
    twin_statuses,
)
from lintas.workers.model import load_model
from lintas.workers.model.model import InfraModel
from lintas.workers.reach.credentials import Target

TWIN_NAME = re.compile(r"[a-z][a-z0-9-]{0,25}")


@dataclass(frozen=True, slots=True)
class TwinFacts:
    """How to reach a twin's switches and hosts: through ``mgmt_namespace``, with the twin's own
    login; a host's libvirtd and ovsdb-server also through its unix sockets (``hosts``)."""

    name: str
    prefix: str
    mgmt_namespace: str
    devices: dict[str, DeviceFacts]
    hosts: dict[str, HostFacts] = field(default_factory=dict)

    def target(self, device: str) -> Target:
        if device in self.hosts:
            h = self.hosts[device]
            return Target(h.name, h.mgmt_ip, "host", namespace=self.mgmt_namespace)
        f = self.devices[device]
        return Target(f.name, f.mgmt_ip, "device", namespace=self.mgmt_namespace)


# -- up ----------------------------------------------------------------------------------------


async def twin_up(
    settings: Settings,
    repo: Path | None = None,
    *,
    name: str | None = None,
    only: frozenset[str] | None = None,
    hosts: frozenset[str] | None = None,
    hold: bool = False,
    tools: Tools | None = None,
) -> TwinRecord:
    """Build a twin of ``repo``'s switches (``only``: a subset) and ``hosts`` (none by default; each
    with its uplink leaf built); registers its credentials.

    With ``hold`` it lives as long as this process (a later sweep removes it after); without,
    until :func:`twin_down`. A failure or cancellation removes what was built.
    """
    tools = tools or find_tools()
    repo = (repo or TEMPLATE_DIR).resolve()
    model = await asyncio.to_thread(load_model, repo)
    await sweep_twins(tools)
    async with locked():
        taken = {st.record.name for st in twin_statuses() if st.record is not None}
        instance = await _allocate(tools)
        name = name or instance.prefix
        if not TWIN_NAME.fullmatch(name):
            raise LabError(f"a twin's name is lowercase letters, digits and '-', at most 26: {name!r}")
        if name in taken:
            raise LabError(f"a twin named {name!r} exists (see `lintas twin list`)")
        plan = plan_lab(model, instance, only=only, hosts=hosts or False)
        if not plan.switches:
            raise LabError(f"{repo} has no FRR switch to build a twin from")
        paths = twin_paths(settings.home, instance)
        paths.run_root.mkdir(mode=0o755, parents=True)
        record = TwinRecord(
            name=name,
            prefix=instance.prefix,
            home=str(settings.home),
            repo=str(repo),
            holder=me(),
            switches=[s.name for s in plan.switches],
            hosts=[h.name for h in plan.hosts],
        )
        save_record(record)  # the intent, before anything is built
    try:
        await _build(tools, paths, model, plan, record)
    except BaseException:
        await asyncio.shield(teardown(tools, instance))
        raise
    record.phase = "up"
    if not hold:
        record.holder = None
    save_record(record)
    return record


async def _allocate(tools: Tools) -> Instance:
    used = await prefixes_anywhere(tools)
    for _ in range(64):
        inst = twin_instance(secrets.token_hex(TWIN_TAG_HEX // 2))
        if inst.prefix not in used:
            return inst
    raise LabError("no free twin prefix")


async def _build(tools: Tools, paths: LabPaths, model: InfraModel, plan: LabPlan, record: TwinRecord) -> None:
    paths.lab_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state = state_from_plan(plan, paths, Path(record.repo), frr.DAEMONS)
    save_state(paths, state)
    # sshd's privilege separation directory, /run/frr and the hosts' libvirt and OVS directories
    # (mount points): made if missing and left in place (a lab or another twin may use them)
    for d in (ssh.PRIVSEP_DIR, Path(DEVICE_FRR_RUN), *(hypervisor.mount_points() if plan.hosts else [])):
        if not d.exists():
            d.mkdir(mode=0o755, parents=True)
            if d == Path(DEVICE_FRR_RUN):
                shutil.chown(d, "frr", "frr")
    await ssh.ensure_keypair(tools, paths.key, f"lintas-twin-{record.name}")
    await netns.build(tools, plan)
    await gather_limited(
        PARALLEL,
        [*(start_switch(tools, paths, sw) for sw in plan.switches), *(start_host(tools, paths, h) for h in plan.hosts)],
    )
    ssh.write_known_hosts(paths, plan)
    await wait_ready(paths, plan)
    await play_nova(tools, paths, model, plan)
    state.phase = "up"
    save_state(paths, state)
    register_twin(paths, state, record.name)


# -- down --------------------------------------------------------------------------------------


async def twin_down(
    settings: Settings, name: str, *, tools: Tools | None = None, force: bool = False
) -> TwinDownReport:
    """Remove the twin named ``name``. A twin another live process holds (a run's twin stage using
    it, a `twin up` still building it) is refused unless ``force``: pulling it away mid-run would fail
    that run for nothing. Its holder, a dead twin, or one that is up and held by nobody, may remove it."""
    record = find_twin(name)
    holder = record.holder
    if holder is not None and not force and is_alive(record) and holder != me():
        raise LabError(
            f"twin {name!r} is held by process {holder.pid} (a run's twin stage, or a `twin up` building it): "
            "not removed; it goes when its holder is done (or dies: then `lab down` or the next twin removes it); "
            "--force removes it now"
        )
    tools = tools or find_tools(teardown=True)
    return await teardown(tools, record.instance)


# -- facts -------------------------------------------------------------------------------------


def twin_facts(name: str) -> TwinFacts:
    """How to reach the switches of twin ``name`` (from its files; no root needed to read them)."""
    record = find_twin(name)
    inst = record.instance
    paths = twin_paths(Path(record.home), inst)
    state = load_state(paths)
    if state is None or record.phase != "up":
        raise LabError(f"twin {name!r} is not up")
    return TwinFacts(
        record.name, record.prefix, inst.mgmt_namespace or "", switch_facts(paths, state), host_facts(paths, state)
    )
