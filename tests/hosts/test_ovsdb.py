"""workers.hosts.ovsdb against a real ovsdb-server + ovs-vswitchd (netdev datapath)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from lintas.workers.hosts import ovsdb
from lintas.workers.render.ovs_schema import Bridge, Interface, OvsSpec, Port, load_ovs_spec

from .helpers import bundle

pytestmark = pytest.mark.integration


def vsctl(target: str, *args: str) -> str:
    return subprocess.run(
        ["ovs-vsctl", f"--db={target}", *args], check=True, capture_output=True, text=True, timeout=20
    ).stdout.strip()


@pytest.fixture
def api(ovs_target: str) -> Iterator[Any]:
    with ovsdb.session(ovs_target) as a:
        yield a
    # leave an empty switch for the next test (only bridges; the root row keeps foreign keys)
    for br in vsctl(ovs_target, "list-br").split():
        vsctl(ovs_target, "--if-exists", "del-br", br)
    vsctl(ovs_target, "clear", "Open_vSwitch", ".", "external_ids")


def spec_kvm() -> OvsSpec:
    return load_ovs_spec(bundle("kvm-uat-01")["ovs.json"])


def with_tunnel(spec: OvsSpec, remote: str) -> OvsSpec:
    """``spec`` plus a geneve port to ``remote`` on br-int."""
    ids = {"lintas-managed": "true"}
    port = Port(
        name="gnv-test",
        external_ids=ids,
        interfaces=[
            Interface(
                name="gnv-test",
                type="geneve",
                options={"remote_ip": remote, "key": "flow", "csum": "true"},
                external_ids=ids,
            )
        ],
    )
    bridges = [b.model_copy(update={"ports": [*b.ports, port]}) if b.name == "br-int" else b for b in spec.bridges]
    return spec.model_copy(update={"bridges": bridges})


def test_converge_from_empty_then_idempotent(api: Any, ovs_target: str) -> None:
    spec = spec_kvm()
    before = ovsdb.differences(spec, ovsdb.read(api))
    assert "bridge br-int missing" in before and "bridge br-phy missing" in before
    changes = ovsdb.converge(api, spec, None)
    assert "add bridge br-phy (netdev)" in changes and "add port ens1f0 to br-phy" in changes
    obs = ovsdb.read(api)
    assert ovsdb.differences(spec, obs) == []
    assert ovsdb.health(spec, obs) == []  # ofports assigned, MTU 9000 applied by ovs-vswitchd
    assert obs.bridges["br-phy"].ports["ens1f0"].interfaces[0].mtu == 9000
    assert vsctl(ovs_target, "get", "Bridge", "br-int", "datapath_type") == "netdev"
    assert ovsdb.converge(api, spec, None) == []


def test_drift_names_a_port_deleted_by_hand(api: Any, ovs_target: str) -> None:
    spec = with_tunnel(spec_kvm(), "10.20.0.21")
    ovsdb.converge(api, spec, None)
    vsctl(ovs_target, "del-port", "br-int", "gnv-test")
    with ovsdb.session(ovs_target) as fresh:  # as a drift scan does: a new session, a fresh replica
        diffs = ovsdb.differences(spec, ovsdb.read(fresh))
    assert diffs == ["bridge br-int: port gnv-test missing"]


def test_changed_tunnel_options_and_mtu_are_converged(api: Any) -> None:
    old = with_tunnel(spec_kvm(), "10.20.0.21")
    ovsdb.converge(api, old, None)
    new = with_tunnel(spec_kvm(), "10.20.0.99")
    assert ovsdb.differences(new, ovsdb.read(api)) == [
        "interface gnv-test options: want {csum=true, key=flow, remote_ip=10.20.0.99}, "
        "have {csum=true, key=flow, remote_ip=10.20.0.21}"
    ]
    changes = ovsdb.converge(api, new, old)
    assert changes == ["interface gnv-test options {csum=true, key=flow, remote_ip=10.20.0.99}"]
    assert ovsdb.differences(new, ovsdb.read(api)) == []


def test_restore_snapshot_removes_what_the_change_added_and_keeps_foreign_rows(api: Any, ovs_target: str) -> None:
    vsctl(ovs_target, "add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev")
    vsctl(ovs_target, "add-port", "br-int", "tap-nova", "--", "set", "Interface", "tap-nova", "type=internal")
    vsctl(ovs_target, "set", "Open_vSwitch", ".", "external_ids:hostname=osc-01")
    spec = load_ovs_spec(bundle("osc-01")["ovs.json"])
    snap = ovsdb.snapshot(ovsdb.read(api), spec, None, [])
    ovsdb.converge(api, spec, None)
    obs = ovsdb.read(api)
    assert obs.external_ids["ovn-encap-type"] == "geneve" and obs.external_ids["hostname"] == "osc-01"
    assert "br-provider" in obs.bridges
    undone = ovsdb.converge(api, snap, spec)
    assert "del bridge br-provider" in undone
    obs = ovsdb.read(api)
    assert set(obs.bridges) == {"br-int"}
    assert set(obs.bridges["br-int"].ports) == {"br-int", "tap-nova"}  # the foreign tap survives
    assert obs.external_ids == {"hostname": "osc-01"}  # Lintas's OVN keys gone, the foreign key kept
    assert "lintas-managed" not in obs.bridges["br-int"].external_ids


def test_managed_rows_no_longer_modelled_are_removed_but_not_a_bridge_with_foreign_ports(
    api: Any, ovs_target: str
) -> None:
    spec = with_tunnel(spec_kvm(), "10.20.0.21")
    ovsdb.converge(api, spec, None)
    vsctl(ovs_target, "add-port", "br-phy", "tap-other", "--", "set", "Interface", "tap-other", "type=internal")
    without_phy = spec.model_copy(
        update={"bridges": [b for b in spec_kvm().bridges if b.name == "br-int"], "ip_addresses": []}
    )
    changes = ovsdb.converge(api, without_phy, spec)
    assert "del port gnv-test from br-int" in changes
    assert "del port ens1f0 from br-phy" in changes
    assert "keep bridge br-phy: it still carries tap-other" in changes
    obs = ovsdb.read(api)
    assert "gnv-test" not in obs.bridges["br-int"].ports and "br-phy" in obs.bridges


def test_a_refused_transaction_applies_nothing(api: Any, ovs_target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_kvm()
    ovsdb.converge(api, spec, None)
    ovn = spec.model_copy(
        update={"open_vswitch": spec.open_vswitch.model_copy(update={"external_ids": {"ovn-encap-type": "geneve"}})}
    )
    stale = ovsdb.ObservedOvs()  # as if the switch were empty: the plan re-adds ens1f0, which exists
    monkeypatch.setattr(ovsdb, "read", lambda _api: stale)
    with pytest.raises(ovsdb.OvsdbError, match="nothing applied"):
        ovsdb.converge(api, ovn, spec)
    monkeypatch.undo()
    assert "ovn-encap-type" not in ovsdb.read(api).external_ids


def test_bonds_are_refused_before_any_transaction(api: Any) -> None:
    ids = {"lintas-managed": "true"}
    bond = Port(name="bond0", external_ids=ids, interfaces=[Interface(name="eth1"), Interface(name="eth2")])
    local = Port(name="br-x", interfaces=[Interface(name="br-x", type="internal")])
    spec = OvsSpec(host="h", connection="unix:/x", bridges=[Bridge(name="br-x", ports=[local, bond])])
    with pytest.raises(ovsdb.OvsdbError, match="no bonds"):
        ovsdb.converge(api, spec, None)
    assert "br-x" not in ovsdb.read(api).bridges


def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(ovsdb.OvsdbError, match="cannot connect"), ovsdb.session("unix:/nonexistent/db.sock", 2):
        pass


def test_two_hosts_are_two_databases(api: Any, ovs_target: str, ovs_target_b: str) -> None:
    """ovsdbapp keeps its connection on the class: each session must still reach its own server."""
    ovsdb.converge(api, spec_kvm(), None)
    with ovsdb.session(ovs_target_b) as other:
        assert ovsdb.read(other).bridges == {}
        ovsdb.converge(other, load_ovs_spec(bundle("osc-01")["ovs.json"]), None)
        assert "br-provider" in ovsdb.read(other).bridges
    assert "br-provider" not in ovsdb.read(api).bridges
    with ovsdb.session(ovs_target_b) as other:  # and the other server kept its own state
        assert set(ovsdb.read(other).bridges) == {"br-int", "br-provider"}
