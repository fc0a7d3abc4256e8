"""The template's hypervisor hosts, for real: libvirtd + QEMU and OVS per host, nova on osc-01, SSH."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from lintas.engine.settings import Settings
from lintas.workers.lab import (
    LabState,
    kvm_usable,
    lab_host_facts,
    lab_hosts_facts,
    lab_status,
    nova_domains,
    nova_set_mac,
)
from lintas.workers.render.domain import domain_facts

from .conftest import ip_json, needs_lab, run

pytestmark = needs_lab

HOSTS = ["kvm-uat-01", "osc-01"]
COREBANK = "9b2d4f10-1c0e-4d7a-8f3e-6a5b4c3d2e01"  # instances.yaml: corebank-uat-01 on osc-01
COREBANK_PORT = "5d7e1c2a-0b3f-4e6d-9a8c-1f2e3d4c5b01"


def libvirt_conn(settings: Settings, host: str) -> Any:
    import libvirt

    return libvirt.open(lab_host_facts(settings, host).libvirt_uri)


def vsctl(settings: Settings, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    """ovs-vsctl from the root namespace, over the host's OVSDB TCP remote (what the deployer uses)."""
    return subprocess.run(
        ["ovs-vsctl", f"--db={lab_host_facts(settings, host).ovsdb}", "--timeout=10", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_hosts_are_healthy_and_answer(lab: tuple[Settings, LabState]) -> None:
    settings, state = lab
    assert {h: (r.kind, r.mgmt_ip) for h, r in state.hosts.items()} == {
        "kvm-uat-01": ("kvm", "10.255.0.101/24"),
        "osc-01": ("openstack", "10.255.0.111/24"),
    }
    statuses = {s.name: s for s in run(lab_status(settings)) if s.kind == "host"}
    assert sorted(statuses) == HOSTS
    for s in statuses.values():
        assert s.healthy, s
        assert set(s.daemons) == {"libvirtd", "virtlogd", "ovsdb-server", "ovs-vswitchd"}
        assert all(s.daemons.values()) and s.sshd and s.mgmt_reachable
    facts = lab_hosts_facts(settings)
    f = facts["osc-01"]
    assert (f.namespace, f.kind, f.mgmt_ip, f.ssh_port, f.username) == (
        "lx-osc-01",
        "openstack",
        "10.255.0.111",
        22,
        "root",
    )
    assert (f.ovsdb, f.domain_type) == ("tcp:10.255.0.111:6640", "qemu")  # the template's lab hosts: TCG
    assert f.libvirt_socket.is_socket() and f.libvirt_ro_socket.is_socket() and (f.ovs_run_dir / "db.sock").is_socket()
    for host in HOSTS:
        [eth0] = ip_json("-n", f"lx-{host}", "addr", "show", "dev", "eth0")  # type: ignore[misc]
        assert [a["local"] for a in eth0["addr_info"] if a["family"] == "inet"] == [facts[host].mgmt_ip]
        conn = libvirt_conn(settings, host)
        try:
            assert conn.getHostname() == host  # the host's own UTS namespace
        finally:
            conn.close()
        # OVSDB answers over TCP on the management address, from the root namespace
        res = vsctl(settings, host, "get", "Open_vSwitch", ".", "ovs_version")
        assert res.returncode == 0 and res.stdout.strip(), res.stderr
    assert vsctl(settings, "kvm-uat-01", "list-br").stdout.split() == []  # the deployer makes its bridges
    assert vsctl(settings, "osc-01", "list-br").stdout.split() == ["br-int"]  # neutron's, on osc-01
    assert vsctl(settings, "osc-01", "get", "Bridge", "br-int", "datapath_type").stdout.strip() == "netdev"
    assert vsctl(settings, "osc-01", "get", "Bridge", "br-int", "external_ids").stdout.strip() == "{}"


def test_nova_domains_and_a_mac_changed_behind_lintas(lab: tuple[Settings, LabState]) -> None:
    settings, _ = lab
    assert nova_domains(settings, "kvm-uat-01") == []  # Lintas defines those (deployer)
    assert nova_domains(settings, "osc-01") == [("instance-00000004", COREBANK, "running")]
    conn = libvirt_conn(settings, "osc-01")
    try:
        facts = domain_facts(conn.lookupByUUIDString(COREBANK).XMLDesc(0))
        assert (facts.managed_by, facts.instance_name, facts.vcpus, facts.memory_kib) == (
            "nova",
            "corebank-uat-01",
            2,
            8192 * 1024,
        )
        assert facts.flavor and facts.flavor.name == "m1.tiny3.migrate" and facts.flavor.disk_gb == 80
        assert facts.owner and (facts.owner.user, facts.owner.project) == ("team-core-banking", "uat-core-banking")
        [nic] = facts.interfaces
        assert (nic.mac, nic.bridge, nic.virtualport_type, nic.interfaceid, nic.target_dev, nic.model) == (
            "fa:16:3e:5c:20:01",
            "br-int",
            "openvswitch",
            COREBANK_PORT,
            "tap5d7e1c2a-0b",
            "virtio",
        )
        assert facts.domain_type == lab_host_facts(settings, "osc-01").domain_type
        # libvirt plugged the tap into the host's OVS, with neutron's port id
        assert vsctl(settings, "osc-01", "list-ports", "br-int").stdout.split() == ["tap5d7e1c2a-0b"]
        iface_id = vsctl(settings, "osc-01", "get", "Interface", "tap5d7e1c2a-0b", "external_ids:iface-id")
        assert iface_id.stdout.strip().strip('"') == COREBANK_PORT

        nova_set_mac(settings, "osc-01", COREBANK, 0, "fa:16:3e:5c:20:99")
        live = domain_facts(conn.lookupByUUIDString(COREBANK).XMLDesc(0))
        assert live.macs == ["fa:16:3e:5c:20:99"] and live.managed_by == "nova"
        assert nova_domains(settings, "osc-01") == [("instance-00000004", COREBANK, "running")]
    finally:
        conn.close()


def test_ssh_into_a_host_reaches_its_own_libvirt_and_ovs(lab: tuple[Settings, LabState]) -> None:
    settings, _ = lab
    f = lab_host_facts(settings, "osc-01")
    argv = [
        "ssh",
        "-i",
        str(f.key_file),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={f.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        "-p",
        str(f.ssh_port),
        f"{f.username}@{f.mgmt_ip}",
        "virsh -c qemu:///system hostname && virsh -c qemu:///system list --name && ovs-vsctl list-br",
    ]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["osc-01", "instance-00000004", "br-int"]


def test_kvm_usable_needs_a_working_device() -> None:
    assert not kvm_usable("/nonexistent/kvm")
    assert not kvm_usable("/dev/null")  # opens, but is not KVM


def test_a_libvirt_call_to_a_host_that_stops_answering_fails_instead_of_hanging(
    lab: tuple[Settings, LabState],
) -> None:
    """The keepalive of Lintas's libvirt connections works (it needs libvirt's event loop): with
    the host's libvirtd frozen (SIGSTOP), a call fails after the probes go unanswered."""
    import libvirt

    from lintas.workers.hosts.libvirt_conn import open_conn

    settings, _ = lab
    [status] = [s for s in run(lab_status(settings)) if s.name == "kvm-uat-01"]
    pid = status.daemons["libvirtd"]
    assert pid
    conn = open_conn(lab_host_facts(settings, "kvm-uat-01").libvirt_uri, readonly=True, keepalive=(1, 2))
    try:
        assert conn.getHostname() == "kvm-uat-01"
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(libvirt.libvirtError):
                conn.getHostname()
            took = time.monotonic() - t0
        finally:
            os.kill(pid, signal.SIGCONT)
        assert took < 15, took  # 1 s of silence + 2 unanswered probes, and the loop's own ticks
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
    again = open_conn(lab_host_facts(settings, "kvm-uat-01").libvirt_uri, readonly=True)
    try:
        assert again.getHostname() == "kvm-uat-01"  # the daemon itself is fine once thawed
    finally:
        again.close()


_HAMMER = """
import sys, threading, time
from lintas.engine.infra_repo import TEMPLATE_DIR
from lintas.engine.settings import Settings
from lintas.workers.hosts.connect import host_conns
from lintas.workers.hosts.libvirt_conn import libvirt_module, open_conn
from lintas.workers.model import load_model

lv = libvirt_module()
hc = host_conns(load_model(TEMPLATE_DIR), Settings(home=sys.argv[1]), ["kvm-uat-01"])["kvm-uat-01"]
conn = open_conn(hc.libvirt_uri, readonly=False)
xml = "<domain type='qemu'><name>hammer-%d</name><memory unit='MiB'>16</memory><os><type arch='x86_64'>hvm</type></os></domain>"
doms = [conn.defineXML(xml % i) for i in range(3)]
calls = [0]
def work() -> None:
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        for d in conn.listAllDomains(0):
            d.XMLDesc(0)
            d.isActive()
        try:
            conn.lookupByName("hammer-none")
        except lv.libvirtError:
            pass
        calls[0] += 1
threads = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
for d in doms:
    d.undefine()
conn.close()
print(calls[0])
"""


def test_one_libvirt_connection_called_from_several_threads_at_once_is_safe(lab: tuple[Settings, LabState]) -> None:
    """Deploy and rollback converge a host's domains from a thread pool over one connection (the
    deploy path's: libssh, keepalive, libvirt's event loop running). Unserialized, libvirt 9.0's
    client crashed the process within seconds of this load (SIGSEGV in virNetClientIOEventFD:
    `lintas up` died mid-rollback in CI); it runs in a child process so a crash fails the test."""
    settings, _ = lab
    p = subprocess.run(
        [sys.executable, "-c", _HAMMER, str(settings.home), "10"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    assert int(p.stdout.strip()) > 100  # rounds of 5+ calls each: the threads really ran
