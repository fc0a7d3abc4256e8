"""End to end on the real lab's hypervisor hosts: libvirtd + QEMU/KVM and Open vSwitch (netdev).

One lab (2 spines, 4 leaves, ``kvm-uat-01`` whose domains Lintas owns, ``osc-01`` whose
domains the lab's nova fixture owns), one `lintas up`, git pushes. In order:

1. the first deploy configures both hosts' OVS/OVN and kvm-uat-01's domains (running, with
   the modelled MAC on br-int); nova's domains on osc-01 are not touched;
2. an instance added to the repo runs with its MAC on br-int; a bigger flavor redefines
   it; removed with ``allow_deletions`` in the pipeline it is undefined;
3. a host-networking change on both hosts (osc-01 from OVN to plain geneve: a new tunnel
   on each side, and the tunnel network's MTU raised to 9100) is applied and verified (each
   host's uplink probes, to its gateway and through the fabric to its peer at 9100 bytes with DF);
   leaf-01's host port cut to MTU 1500 behind Lintas's back, those probes say the MTU is short;
4. a change that validates but cannot work (``datapath_type: system`` without the OVS
   kernel module, plus a new instance) ends ``rolled_back``: the datapath and the domains
   are as before;
5. ``lintas drift`` names, exactly: a nova domain whose MAC was changed behind Lintas's
   back, an OVS port deleted by hand, an FRR setting changed by hand.

Lintas never defines, changes or removes a domain on osc-01: its libvirt connection to an
``openstack`` host is read-only, and the tests check the nova domains' definitions.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lintas.engine.settings import Settings
from lintas.workers.checks import Check
from lintas.workers.deploy.common import uplink_probes
from lintas.workers.deploy.hostfleet import HostFleet
from lintas.workers.hosts import domains as D
from lintas.workers.hosts import ovsdb
from lintas.workers.hosts.probes import run as run_probes
from lintas.workers.hosts.probes import uplink_checks
from lintas.workers.lab import lab_device_facts, lab_host_facts
from lintas.workers.lab.nova import nova_set_mac
from lintas.workers.model import load_model
from lintas.workers.render.domain import domain_facts
from tests.deploy.test_fabric_e2e import Env, lab_settings, lx, stage  # noqa: F401 - module-scoped fixtures

pytestmark = [pytest.mark.integration]

HOSTS = ["kvm-uat-01", "osc-01"]
NEW = {"name": "uat-new-01", "uuid": "3f0c6a52-6c6e-4b8e-9a57-0e3f5d1b2a10", "mac": "fa:16:3e:1a:00:10"}


def libvirt(settings: Settings, host: str) -> Any:
    return D.open_conn(lab_host_facts(settings, host).libvirt_uri, readonly=True)


def ovs_state(settings: Settings, host: str) -> ovsdb.ObservedOvs:
    with ovsdb.session(lab_host_facts(settings, host).ovsdb) as api:
        return ovsdb.read(api)


def domains(settings: Settings, host: str) -> dict[str, tuple[bool, str]]:
    """``{name: (running, inactive XML)}``."""
    c = libvirt(settings, host)
    try:
        return {d.name(): (bool(d.isActive()), d.XMLDesc(D.XML_INACTIVE)) for d in c.listAllDomains()}
    finally:
        c.close()


def on_br_int(settings: Settings, host: str, mac: str) -> bool:
    obs = ovs_state(settings, host)
    ports = obs.bridges["br-int"].ports.values()
    return any(i.external_ids.get("attached-mac") == mac for p in ports for i in p.interfaces)


def edit_file(rel: str, fn: Callable[[str], str]) -> Callable[[Path], None]:
    def edit(repo: Path) -> None:
        p = repo / rel
        new = fn(p.read_text())
        assert new != p.read_text(), f"edit of {rel} changed nothing"
        p.write_text(new)

    return edit


def add_instance(flavor: str) -> Callable[[Path], None]:
    return edit_file(
        "hosts/instances.yaml",
        lambda t: (
            t
            + (
                f"\n  - name: {NEW['name']}\n    uuid: {NEW['uuid']}\n    flavor: {flavor}\n    host: kvm-uat-01\n"
                f"    state: running\n    project: uat-payments\n    owner: team-payments\n    image: cirros-0.6.2\n"
                f'    nics:\n      - network: uat-web\n        mac: "{NEW["mac"]}"\n'
            )
        ),
    )


def remove_instance(repo: Path) -> None:
    p = repo / "hosts" / "instances.yaml"
    text, n = re.subn(rf"\n  - name: {NEW['name']}\n(?:    .*\n|      .*\n|\n(?!  - ))*", "\n", p.read_text())
    assert n == 1
    p.write_text(text)


@pytest.fixture(scope="module")
def first(lx: Env) -> dict[str, Any]:  # noqa: F811
    nova_before = {h: domains(lx_settings(lx), h) for h in ["osc-01"]}
    run = lx.drive(lx.new_run(lx.git("rev-parse", "HEAD"), timeout=60))
    return {"run": run, "nova_before": nova_before}


def lx_settings(lx: Env) -> Settings:  # noqa: F811
    return Settings(home=lx.home)


def test_first_deploy_configures_both_hosts_and_leaves_nova_alone(lx: Env, first: dict[str, Any]) -> None:  # noqa: F811
    run, s = first["run"], lx_settings(lx)
    assert run["state"] == "succeeded", run["error"]
    dep = stage(run, "deploy")["summary"]
    assert set(HOSTS) <= set(dep["committed"]) and dep["waves"][-1] == HOSTS  # after every switch wave
    assert set(HOSTS) <= set(stage(run, "verify")["summary"]["confirmed"])
    kvm = domains(s, "kvm-uat-01")
    assert kvm["uat-web-01"][0] and kvm["uat-app-01"][0] and not kvm["uat-batch-01"][0]
    assert domain_facts(kvm["uat-web-01"][1]).macs == ["fa:16:3e:1a:00:01"]
    assert on_br_int(s, "kvm-uat-01", "fa:16:3e:1a:00:01")
    osc = ovs_state(s, "osc-01")
    assert osc.external_ids["ovn-encap-type"] == "geneve" and osc.external_ids["ovn-encap-ip"] == "10.20.0.21"
    assert osc.external_ids["ovn-bridge-mappings"] == "physnet1:br-provider" and "br-provider" in osc.bridges
    assert domains(s, "osc-01") == first["nova_before"]["osc-01"]  # nova's domains: byte for byte unchanged
    checks = {c["check"] for c in stage(run, "verify")["summary"].get("checks", [])}
    assert not checks  # no failing check


def test_instance_added_resized_and_removed(lx: Env, first: dict[str, Any]) -> None:  # noqa: F811
    s = lx_settings(lx)
    flavor = edit_file(
        "hosts/flavors.yaml", lambda t: t + ("\n  - name: lab.micro\n    vcpus: 1\n    ram_mib: 128\n    disk_gb: 1\n")
    )
    run = lx.push_and_drive("add uat-new-01", lambda repo: (flavor(repo), add_instance("lab.nano")(repo)))
    assert run["state"] == "succeeded", run["error"]
    assert stage(run, "deploy")["summary"]["committed"] == ["kvm-uat-01"]
    new = domains(s, "kvm-uat-01")[NEW["name"]]
    assert new[0] and domain_facts(new[1]).macs == [NEW["mac"]] and on_br_int(s, "kvm-uat-01", NEW["mac"])

    run = lx.push_and_drive(
        "uat-new-01 to lab.micro",
        edit_file(
            "hosts/instances.yaml",
            lambda t: t.replace(
                f"uuid: {NEW['uuid']}\n    flavor: lab.nano", f"uuid: {NEW['uuid']}\n    flavor: lab.micro"
            ),
        ),
    )
    assert run["state"] == "succeeded", run["error"]
    assert domain_facts(domains(s, "kvm-uat-01")[NEW["name"]][1]).memory_kib == 128 * 1024  # redefined
    logs = " ".join(lx.cli("logs", run["run_id"]).stdout.split())  # unwrap the console's line breaks
    assert "memory 65536 -> 131072 KiB at the next cold boot" in logs  # running: applies at the next boot

    allow = edit_file(
        ".lintas/pipeline.yaml",
        lambda t: t.replace(
            "    approval: on_request", "    approval: on_request\n    with: {allow_deletions: true}", 1
        ),
    )
    run = lx.push_and_drive("remove uat-new-01", lambda repo: (allow(repo), remove_instance(repo)))
    assert run["state"] == "succeeded", run["error"]
    assert NEW["name"] not in domains(s, "kvm-uat-01")
    assert set(domains(s, "kvm-uat-01")) == {"uat-web-01", "uat-app-01", "uat-batch-01"}


def plain_geneve_and_mtu(repo: Path) -> None:
    """osc-01 from OVN to plain geneve (a new tunnel on each host), and the tunnel network
    raised to MTU 9100 end to end (its VLAN on the leaves, both hosts' uplinks)."""
    t = repo / "fabric" / "tenants.yaml"
    text, n = re.subn(r"(  - name: infra-tunnel\n(?:    .*\n)*?    mtu: )9000", r"\g<1>9100", t.read_text())
    assert n == 1
    t.write_text(text)
    p = repo / "hosts" / "hosts.yaml"
    text = p.read_text().replace("      mtu: 9000\n", "      mtu: 9100\n")
    text, n = re.subn(
        r"    ovn:\n(?:      .*\n)+?(?=    capacity:)",
        "    tunnels:\n      type: geneve\n      key: flow\n      csum: true\n      peers: all\n",
        text,
    )
    assert n == 1
    p.write_text(text)


def test_host_networking_change_on_both_hosts(lx: Env, first: dict[str, Any]) -> None:  # noqa: F811
    s = lx_settings(lx)
    run = lx.push_and_drive("osc-01: plain geneve; tunnel network at MTU 9100", plain_geneve_and_mtu)
    assert run["state"] == "succeeded", run["error"]
    assert set(HOSTS) <= set(stage(run, "deploy")["summary"]["committed"])
    kvm, osc = ovs_state(s, "kvm-uat-01"), ovs_state(s, "osc-01")
    gnv_k = kvm.bridges["br-int"].ports["gnv-0a140015"].interfaces[0]
    gnv_o = osc.bridges["br-int"].ports["gnv-0a14000b"].interfaces[0]
    assert (gnv_k.type, gnv_k.options["remote_ip"], gnv_k.options["key"], gnv_k.options["csum"]) == (
        "geneve",
        "10.20.0.21",
        "flow",
        "true",
    )
    assert gnv_o.options["remote_ip"] == "10.20.0.11" and gnv_o.ofport is not None and gnv_o.ofport > 0
    for obs in (kvm, osc):
        uplink = "br-phy" if obs is kvm else "br-provider"
        assert obs.bridges[uplink].ports["ens1f0"].interfaces[0].mtu == 9100
    assert not any(k.startswith("ovn-") for k in osc.external_ids)  # Lintas's OVN keys removed


def test_uplink_probes_find_a_leaf_port_whose_mtu_is_cut_short(lx: Env, first: dict[str, Any]) -> None:  # noqa: F811
    """After the networking change both hosts have plain geneve tunnels: each probes its gateway and its
    peer (through the fabric) at 9100 bytes with DF, over real SSH; leaf-01's host port at MTU 1500
    (behind Lintas, in the lab's namespace) fails kvm-uat-01's probes as an MTU, and osc-01's to it."""
    s = lx_settings(lx)
    model = load_model(lx.work)
    conns = HostFleet(model, s, {h: {} for h in HOSTS}).conns

    def probe() -> dict[str, list[Check]]:
        out = {}
        for h in HOSTS:
            probes = uplink_probes(model, h, set(HOSTS))
            out[h] = uplink_checks(h, probes, run_probes(conns[h], probes, timeout_s=20))
        return out

    ok = probe()
    assert [c.subject for c in ok["kvm-uat-01"]] == [
        "10.20.0.11 → 10.20.0.1 (gateway of infra-tunnel on leaf-01)",
        "10.20.0.11 → 10.20.0.21 (tunnel peer osc-01)",
    ]
    assert all(c.passed and c.observed == "answered at 9100 bytes" for cs in ok.values() for c in cs), ok
    leaf = ["ip", "netns", "exec", "lx-leaf-01", "ip", "link", "set", "dev", "swp1", "mtu"]
    subprocess.run([*leaf, "1500"], check=True)
    try:
        cut = probe()
    finally:
        subprocess.run([*leaf, "9216"], check=True)
    assert all(not c.passed and "MTU is short" in c.observed for c in cut["kvm-uat-01"]), cut
    gw, peer = cut["osc-01"]
    assert gw.passed and not peer.passed and "MTU is short" in peer.observed
    assert all(c.passed for cs in probe().values() for c in cs)


def test_a_change_that_fails_verification_is_rolled_back(lx: Env, first: dict[str, Any]) -> None:  # noqa: F811
    s = lx_settings(lx)
    before = domains(s, "kvm-uat-01")
    system = edit_file(
        "hosts/hosts.yaml",
        lambda t: t.replace("      datapath_type: netdev       # lab", "      datapath_type: system       # lab", 1),
    )
    run = lx.push_and_drive(
        "kvm-uat-01 on the system datapath + uat-new-01", lambda repo: (system(repo), add_instance("lab.nano")(repo))
    )
    assert run["state"] == "rolled_back", run["error"]
    assert "kvm-uat-01" in run["error"] and "br-phy" in run["error"]  # its uplink bridge never came up
    rb = stage(run, "rollback")["summary"]
    assert "kvm-uat-01" in rb["restored"] and rb["totals"]["failed"] == 0
    obs = ovs_state(s, "kvm-uat-01")
    assert {b.datapath_type for b in obs.bridges.values()} == {"netdev"}
    after = domains(s, "kvm-uat-01")
    assert NEW["name"] not in after and set(after) == set(before)
    assert all(after[n][0] == before[n][0] for n in before)


def test_drift_names_nova_mac_ovs_port_and_frr_changes(lx: Env, first: dict[str, Any]) -> None:  # noqa: F811
    s = lx_settings(lx)
    nova_uuid = "9b2d4f10-1c0e-4d7a-8f3e-6a5b4c3d2e01"
    nova_set_mac(s, "osc-01", nova_uuid, 0, "fa:16:3e:99:99:01")
    host = lab_host_facts(s, "kvm-uat-01")
    subprocess.run(
        ["ovs-vsctl", f"--db={host.ovsdb}", "del-port", "br-int", "gnv-0a140015"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    f = lab_device_facts(s, "leaf-03")
    subprocess.run(
        [
            "ssh",
            "-i",
            str(f.key_file),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={f.known_hosts}",
            "-o",
            "BatchMode=yes",
            f"root@{f.mgmt_ip}",
            "vtysh -c 'conf t' -c 'ip prefix-list BY-HAND seq 5 permit 198.51.100.0/24'",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    out = lx.cli("drift", "--json", check=False)
    assert out.returncode == 1, out.stderr
    report = {t["target"]: t for t in json.loads(out.stdout)["targets"]}
    osc = report["osc-01"]
    assert osc["state"] == "drifted"
    assert any("fa:16:3e:5c:20:01" in d and "fa:16:3e:99:99:01" in d for d in osc["differences"]), osc
    kvm = report["kvm-uat-01"]
    assert kvm["state"] == "drifted" and "ovs: bridge br-int: port gnv-0a140015 missing" in kvm["differences"], kvm
    assert any("BY-HAND" in d for d in report["leaf-03"]["differences"]), report["leaf-03"]
    assert report["spine-01"]["state"] in ("in_sync", "behind")
