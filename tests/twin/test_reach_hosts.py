"""Reaching a twin's hosts (issue 18): libvirt and OVSDB through the twin host's own unix sockets,
SSH only inside a twin's management namespace, the login from the twin's registration only."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lintas.engine.settings import Settings
from lintas.workers.hosts import linux
from lintas.workers.lab.lab import host_facts, switch_facts
from lintas.workers.lab.topology import twin_instance
from lintas.workers.lab.twin import TwinFacts
from lintas.workers.model import load_model
from lintas.workers.reach.allowlist import ConnectError
from lintas.workers.reach.netns import twin_mgmt_namespace
from lintas.workers.twin.reach import TwinHostFleet, twin_host_conns
from tests.reach.test_twin_reach import TEMPLATE, registered_twin

HOSTS = frozenset({"kvm-uat-01", "osc-01"})


def _twin(tmp_path: Path, hosts: frozenset[str] = HOSTS) -> tuple[Settings, TwinFacts]:
    """A home with the production lab's and twin ``t1``'s registrations (as they write them), and t1's facts."""
    only = frozenset({"spine-01", "spine-02", "leaf-01", "leaf-03"})
    settings, tpaths, state = registered_twin(tmp_path, only=only, hosts=hosts)
    facts = TwinFacts("t1", "lt3f2a", "lt3f2a-mgmt", switch_facts(tpaths, state), host_facts(tpaths, state))
    return settings, facts


def test_a_twin_hosts_conns_use_its_sockets_its_namespace_and_its_login(tmp_path: Path) -> None:
    settings, facts = _twin(tmp_path)
    model = load_model(TEMPLATE)
    conns = twin_host_conns(model, settings, facts, sorted(HOSTS))
    run = "/run/lintas-twin/lt3f2a"
    kvm, osc = conns["kvm-uat-01"], conns["osc-01"]
    assert kvm.libvirt_uri == f"qemu+unix:///system?socket={run}/lt3f2a-kvm-uat-01/libvirt-run/libvirt-sock"
    assert not kvm.readonly and kvm.kind == "kvm"
    # nova's host: the read-only socket, as production's is opened read-only
    assert osc.libvirt_uri == f"qemu+unix:///system?socket={run}/lt3f2a-osc-01/libvirt-run/libvirt-sock-ro"
    assert osc.readonly and osc.kind == "openstack"
    assert kvm.ovsdb == f"unix:{run}/lt3f2a-kvm-uat-01/ovs-run/db.sock"
    for c in (kvm, osc):
        assert c.namespace == "lt3f2a-mgmt" and c.source == "twin-t1"
        assert c.key_file == Path(f"{run}/ctl/keys/id_ed25519") and c.known_hosts == Path(f"{run}/ctl/keys/known_hosts")
        assert c.address == str(model.hosts[c.name].mgmt_ip.ip)  # the modelled address, in the twin's namespace
    fleet = TwinHostFleet(model, settings, facts, ["kvm-uat-01"])
    assert list(fleet.conns) == ["kvm-uat-01"] and fleet.conns["kvm-uat-01"] == kvm


def test_a_host_the_twin_did_not_build_has_no_conn(tmp_path: Path) -> None:
    settings, facts = _twin(tmp_path, frozenset({"kvm-uat-01"}))
    with pytest.raises(ConnectError, match="osc-01: not built by twin 't1'"):
        twin_host_conns(load_model(TEMPLATE), settings, facts, ["osc-01", "kvm-uat-01"])


def test_ssh_runs_only_inside_a_twins_management_namespace(tmp_path: Path) -> None:
    settings, facts = _twin(tmp_path)
    conn = twin_host_conns(load_model(TEMPLATE), settings, facts, ["kvm-uat-01"])["kvm-uat-01"]
    assert twin_mgmt_namespace(twin_instance("00ff").mgmt_namespace or "") == "lt00ff-mgmt"
    for wrong in ("lx-kvm-uat-01", "lt3f2a-kvm-uat-01", "lt3f2a-mgmt; reboot", "mgmt"):
        with pytest.raises(linux.HostShellError, match="not a twin's management namespace"):
            linux.ssh(dataclasses.replace(conn, namespace=wrong), ["true"])
