"""Hypervisor hosts in twins (issue 18), for real: libvirtd, virtlogd, ovsdb-server, ovs-vswitchd
and sshd of each host started in the twin's own namespaces with the twin's directories, nova's
domains on the openstack host, beside the production lab's hosts and without touching them; and
nothing left (QEMU, daemons, mounts, namespaces) after `twin down` or `lab down` of a dead twin.

Runs against the production lab (one per module, ``lab``): run it under ``flock /tmp/lintas-lab.lock``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lintas.engine.settings import Settings
from lintas.workers.hosts import linux, ovsdb
from lintas.workers.hosts.connect import HostConn
from lintas.workers.hosts.libvirt_conn import open_conn
from lintas.workers.lab import LabError, LabState, lab_down, lab_hosts_facts
from lintas.workers.lab import hypervisor as hv
from lintas.workers.lab.lab import HostFacts
from lintas.workers.lab.netns import orphan_mounts, pids_in
from lintas.workers.lab.nova import nova_instances
from lintas.workers.lab.paths import TWIN_ROOT, twin_paths
from lintas.workers.lab.twin import twin_down, twin_facts, twin_up
from lintas.workers.lab.twin_life import TwinRecord, twin_statuses
from lintas.workers.model import load_model
from lintas.workers.reach.credentials import find_login, registration_file, twin_sources
from lintas.workers.twin.reach import TwinHostFleet

from .conftest import ROOT, TEMPLATE, ip_json, needs_lab, run
from .test_twin import _killed_builder

pytestmark = needs_lab

SWITCHES = frozenset({"spine-01", "spine-02", "leaf-01", "leaf-03"})
HOSTS = frozenset({"kvm-uat-01", "osc-01"})


def namespaces() -> set[str]:
    return {str(e["name"]) for e in ip_json("netns", "list")}  # type: ignore[union-attr]


def ns_inode(namespace: str) -> int:
    return os.stat(f"/run/netns/{namespace}").st_ino


def domains(facts: HostFacts) -> list[str]:
    lv: Any = importlib.import_module("libvirt")
    conn = lv.openReadOnly(f"qemu+unix:///system?socket={facts.libvirt_ro_socket}")
    try:
        return sorted(d.name() for d in conn.listAllDomains(0))
    finally:
        conn.close()


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def bridges(facts: HostFacts) -> list[str]:
    out = subprocess.run(
        ["ovs-vsctl", f"--db={facts.ovsdb_socket}", "--timeout=10", "list-br"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def production_daemons(settings: Settings) -> dict[str, dict[str, int | None]]:
    from lintas.workers.lab.paths import LabPaths

    paths = LabPaths(settings.home)
    return {h: hv.daemon_pids(paths, h, ns_inode(f"lx-{h}")) for h in lab_hosts_facts(settings)}


def assert_twin_gone(prefix: str, settings: Settings, name: str, inodes: set[int]) -> None:
    assert not {n for n in namespaces() if n.startswith(prefix + "-")}
    assert pids_in(inodes) == set(), "a process of the twin's namespaces survived (QEMU, libvirtd, OVS, sshd?)"
    assert not (TWIN_ROOT / prefix).exists()
    assert orphan_mounts(f"lintas-twin/{prefix}/") == {}
    assert not registration_file(settings.home, f"twin-{name}").exists()


@pytest.fixture(scope="module")
def twin(lab: tuple[Settings, LabState]) -> Iterator[tuple[Settings, TwinRecord]]:
    settings, _ = lab
    assert twin_statuses() == [], "leftovers of another twin on this machine"
    started = time.monotonic()
    record = run(twin_up(settings, TEMPLATE, name=f"h-{secrets.token_hex(3)}", only=SWITCHES, hosts=HOSTS))
    print(f"twin of {len(SWITCHES)} switches and {len(HOSTS)} hosts up in {time.monotonic() - started:.2f} s")
    try:
        yield settings, record
    finally:
        with contextlib.suppress(LabError):  # already removed by the test
            run(twin_down(settings, record.name))


def test_a_twin_runs_its_own_hypervisor_daemons_beside_productions(twin: tuple[Settings, TwinRecord]) -> None:
    settings, record = twin
    assert sorted(record.hosts) == sorted(HOSTS) and sorted(record.switches) == sorted(SWITCHES)
    facts = twin_facts(record.name)
    prod = lab_hosts_facts(settings)
    paths = twin_paths(settings.home, record.instance)
    model = load_model(TEMPLATE)
    for h in sorted(HOSTS):
        f = facts.hosts[h]
        assert f.namespace == f"{record.prefix}-{h}" and str(f.libvirt_socket).startswith(
            f"{TWIN_ROOT}/{record.prefix}/"
        )
        # every daemon runs in the twin's namespace, none of them is production's
        pids = hv.daemon_pids(paths, h, ns_inode(f.namespace))
        assert all(p is not None for p in pids.values()), pids
        assert set(pids.values()).isdisjoint(production_daemons(settings)[h].values())
        # libvirtd and ovsdb-server answer on the twin's sockets; the lab's nova played on osc-01
        assert bridges(f) == (["br-int"] if f.kind == "openstack" else [])  # day 0: nova's only
        want = sorted(name for name, _ in nova_instances(model, h)) if f.kind == "openstack" else []
        assert domains(f) == want
        assert f.libvirt_socket != prod[h].libvirt_socket
    # the twin's login serves its hosts through its management namespace only
    [source] = twin_sources(settings, record.name)
    login = find_login(facts.target("kvm-uat-01"), [source])
    assert login is not None and login.known_hosts == paths.known_hosts
    # sshd of the twin's host answers in the twin's management namespace, as the host (its OVS: the twin's)
    out = subprocess.run(
        ["ip", "netns", "exec", facts.mgmt_namespace, "ssh", "-T", "-F", "/dev/null", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={paths.known_hosts}",
         "-o", "IdentitiesOnly=yes", "-i", str(paths.key), f"root@{facts.hosts['osc-01'].mgmt_ip}",
         "hostname; stat -L -c %i /proc/self/ns/net; ovs-vsctl list-br"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    hostname, inode, *brs = out.stdout.split()
    assert hostname == "osc-01" and int(inode) == ns_inode(f"{record.prefix}-osc-01") and brs == ["br-int"]


def _reach(conn: HostConn) -> tuple[str, list[str], list[str], bool]:
    """What a host operation sees through ``conn``: SSH's hostname, OVSDB's bridges, libvirt's domains,
    and whether the uplink NIC exists (over SSH)."""
    with ovsdb.session(conn.ovsdb) as api:
        brs = sorted(ovsdb.read(api).bridges)
    lv = open_conn(conn.libvirt_uri, readonly=conn.readonly)
    try:
        doms = sorted(d.name() for d in lv.listAllDomains(0))
    finally:
        lv.close()
    hostname = linux.ssh(conn, ["hostname"]).strip()
    return hostname, brs, doms, "ens1f0" in linux.links(conn, ["ens1f0"])


def test_the_twin_host_fleet_reaches_the_twins_daemons_and_never_productions(
    twin: tuple[Settings, TwinRecord],
) -> None:
    settings, record = twin
    facts = twin_facts(record.name)
    model = load_model(TEMPLATE)
    fleet = TwinHostFleet(model, settings, facts, sorted(HOSTS))
    # a marker bridge in the twin's kvm-uat-01 only: seen through the fleet, absent from production's
    subprocess.run(["ovs-vsctl", f"--db={facts.hosts['kvm-uat-01'].ovsdb_socket}", "add-br", "br-twinmark",
                    "--", "set", "Bridge", "br-twinmark", "datapath_type=netdev"], check=True, timeout=30)  # fmt: skip
    got = run(fleet.run(sorted(HOSTS), _reach))
    assert all(o.ok for o in got.values()), {n: o.error for n, o in got.items()}
    kvm, osc = got["kvm-uat-01"].value, got["osc-01"].value
    assert kvm is not None and osc is not None
    assert kvm[0] == "kvm-uat-01" and "br-twinmark" in kvm[1] and kvm[2] == [] and kvm[3]
    assert osc[0] == "osc-01" and osc[2] == sorted(name for name, _ in nova_instances(model, "osc-01"))
    assert "br-twinmark" not in bridges(lab_hosts_facts(settings)["kvm-uat-01"])
    assert fleet.conns["osc-01"].readonly


def test_twin_down_leaves_no_qemu_daemon_mount_or_namespace_and_production_untouched(
    twin: tuple[Settings, TwinRecord],
) -> None:
    settings, record = twin
    before = production_daemons(settings)
    prod = lab_hosts_facts(settings)
    prod_domains = {h: domains(prod[h]) for h in HOSTS}
    inodes = {ns_inode(n) for n in namespaces() if n.startswith(record.prefix + "-")}
    qemu = [p for p in pids_in(inodes) if comm(p).startswith("qemu")]
    assert qemu, "nova's running domain on the twin's osc-01 has a QEMU"
    report = run(twin_down(settings, record.name))
    assert report.processes > 0
    assert_twin_gone(record.prefix, settings, record.name, inodes)
    assert production_daemons(settings) == before
    assert {h: domains(prod[h]) for h in HOSTS} == prod_domains
    assert bridges(prod["osc-01"]) == ["br-int"]


def test_twin_up_builds_hosts_by_hand(twin: tuple[Settings, TwinRecord]) -> None:
    """`lintas twin up --switch ... --host osc-01`: the host with its leaf, how to reach it printed; `twin down`."""
    settings, _ = twin
    name = f"c-{secrets.token_hex(3)}"
    env = {**os.environ, "LINTAS_HOME": str(settings.home)}
    lintas = str(ROOT / ".venv" / "bin" / "lintas")
    args = [lintas, "twin", "up", str(TEMPLATE), "--name", name, "--switch", "leaf-03", "--host", "osc-01"]
    up = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert up.returncode == 0, up.stderr
    facts = twin_facts(name)
    assert f"virsh -c qemu+unix:///system?socket={facts.hosts['osc-01'].libvirt_socket}" in up.stdout, up.stdout
    listed = {r["name"]: r for r in json.loads(subprocess.run([lintas, "twin", "list", "--json"], capture_output=True,
                                                              text=True, env=env, check=True).stdout)}  # fmt: skip
    assert listed[name]["hosts"] == ["osc-01"] and listed[name]["switches"] == ["leaf-03"]
    assert domains(facts.hosts["osc-01"]) == sorted(n for n, _ in nova_instances(load_model(TEMPLATE), "osc-01"))
    inodes = {ns_inode(n) for n in namespaces() if n.startswith(facts.prefix + "-")}
    down = subprocess.run([lintas, "twin", "down", name], capture_output=True, text=True, env=env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert_twin_gone(facts.prefix, settings, name, inodes)
    # a host without its leaf is refused before anything is built
    bad = subprocess.run([*args[:-4], "--switch", "leaf-01", "--host", "osc-01"], capture_output=True, text=True,
                         env=env, timeout=120)  # fmt: skip
    assert bad.returncode != 0 and "host osc-01: its leaf leaf-03 is not in the lab" in bad.stderr, bad.stderr


BUILDER = """
import asyncio, sys, time
from pathlib import Path
from lintas.engine.settings import Settings
from lintas.workers.lab.twin import twin_up
rec = asyncio.run(twin_up(Settings(home=Path(sys.argv[1])), Path(sys.argv[2]), name=sys.argv[3],
                          only=frozenset({"spine-01", "leaf-03"}), hosts=frozenset({"osc-01"}), hold=True))
print(rec.prefix, flush=True)
time.sleep(600)
"""


def test_lab_down_removes_a_dead_twins_hosts(twin: tuple[Settings, TwinRecord]) -> None:
    """Last: a twin with a host whose holder was SIGKILLed once up is removed by `lab down` (QEMU included)."""
    settings, _ = twin
    prefix, name = _killed_builder(settings, mid_build=False, builder=BUILDER)
    inodes = {ns_inode(n) for n in namespaces() if n.startswith(prefix + "-")}
    assert any(comm(p).startswith("qemu") for p in pids_in(inodes)), "nova's domain on the dead twin's osc-01 runs"
    report = run(lab_down(settings))
    assert report.twins == 1
    assert_twin_gone(prefix, settings, name, inodes)
    assert not {n for n in namespaces() if n.startswith("lx-")}
