"""OVSDB changes as typed commands (workers/hosts/ovs_commands.py): what ``plan`` asks for, and the one
ovsdbapp call each command makes inside ``converge``'s single transaction (no server: a recording API)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lintas.workers.hosts import ovsdb
from lintas.workers.hosts.ovs_commands import AddBridge, AddPort, DelBridge, DelPort, Keep, RemoveKeys, SetColumn, Step
from lintas.workers.render.ovs_schema import Bridge, Interface, OpenVswitch, OvsSpec, Port

MANAGED = {"lintas-managed": "true"}


def spec() -> OvsSpec:
    tunnel = Port(
        name="gnv-b",
        external_ids=MANAGED,
        interfaces=[
            Interface(
                name="gnv-b", type="geneve", options={"remote_ip": "10.0.0.2", "key": "flow"}, external_ids=MANAGED
            )
        ],
    )
    br = Bridge(
        name="br-int",
        datapath_type="netdev",
        fail_mode="secure",
        external_ids=MANAGED,
        ports=[Port(name="br-int", interfaces=[Interface(name="br-int", type="internal")]), tunnel],
    )
    return OvsSpec(
        host="kvm-a",
        connection="tcp:127.0.0.1:6640",
        bridges=[br],
        open_vswitch=OpenVswitch(external_ids={"ovn-encap-type": "geneve"}),
    )


def observed_with_leftovers() -> ovsdb.ObservedOvs:
    old = ovsdb.ObservedPort(
        name="gnv-old", external_ids=MANAGED, interfaces=[ovsdb.ObservedInterface(name="gnv-old", type="geneve")]
    )
    foreign = ovsdb.ObservedPort(name="tap1", interfaces=[ovsdb.ObservedInterface(name="tap1", type="system")])
    return ovsdb.ObservedOvs(
        external_ids={"ovn-encap-ip": "10.0.0.1"},
        bridges={
            "br-int": ovsdb.ObservedBridge(
                name="br-int", datapath_type="netdev", fail_mode="secure", external_ids=MANAGED, ports={"gnv-old": old}
            ),
            "br-gone": ovsdb.ObservedBridge(name="br-gone", external_ids=MANAGED, ports={"tap1": foreign}),
        },
    )


def test_plan_returns_typed_steps_removals_first() -> None:
    previous = OvsSpec(
        host="kvm-a",
        connection="tcp:127.0.0.1:6640",
        open_vswitch=OpenVswitch(external_ids={"ovn-encap-ip": "10.0.0.1"}),
    )
    steps = ovsdb.plan(spec(), observed_with_leftovers(), previous)
    assert all(isinstance(s, Step) for s in steps)
    assert [s.command for s in steps] == [
        Keep(),  # br-gone still carries tap1, someone else's
        DelPort("gnv-old", "br-int"),
        RemoveKeys("Open_vSwitch", ".", "external_ids", ("ovn-encap-ip",)),
        SetColumn("Open_vSwitch", ".", "external_ids", {"ovn-encap-type": "geneve"}),
        AddPort("br-int", "gnv-b"),
        SetColumn("Port", "gnv-b", "external_ids", MANAGED),
        SetColumn("Interface", "gnv-b", "type", "geneve"),
        SetColumn("Interface", "gnv-b", "options", {"remote_ip": "10.0.0.2", "key": "flow"}),
        SetColumn("Interface", "gnv-b", "external_ids", MANAGED),
    ]
    assert steps[0].description == "keep bridge br-gone: it still carries tap1" and not steps[0].changes
    assert steps[1].description == "del port gnv-old from br-int" and steps[1].changes


class RecordingApi:
    """The ovsdbapp calls ``converge`` makes, in order, and the one transaction they go into."""

    def __init__(self, observed: ovsdb.ObservedOvs) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.transactions = 0
        self.observed = observed

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kw: Any) -> tuple[Any, ...]:
            return (method, args, tuple(sorted(kw.items())))

        return call

    @contextmanager
    def transaction(self, check_error: bool) -> Iterator[Any]:
        self.transactions += 1
        api = self

        class Txn:
            def add(self, cmd: tuple[Any, ...]) -> None:
                api.calls.append(cmd)

        yield Txn()


def test_converge_makes_one_ovsdbapp_call_per_command_in_one_transaction(monkeypatch: Any) -> None:
    api = RecordingApi(ovsdb.ObservedOvs())
    monkeypatch.setattr(ovsdb, "read", lambda _api: ovsdb.ObservedOvs())
    changes = ovsdb.converge(api, spec(), None)
    assert api.transactions == 1 and changes[0] == "Open_vSwitch external_ids {ovn-encap-type=geneve}"
    assert api.calls[:3] == [
        ("db_set", ("Open_vSwitch", ".", ("external_ids", {"ovn-encap-type": "geneve"})), ()),
        ("add_br", ("br-int",), (("datapath_type", "netdev"), ("may_exist", True))),
        ("db_set", ("Bridge", "br-int", ("fail_mode", "secure")), ()),
    ]
    assert ("add_port", ("br-int", "gnv-b"), (("may_exist", False),)) in api.calls
    assert len(api.calls) == len(changes)


def test_each_command_is_the_ovsdbapp_call_it_always_was() -> None:
    api = RecordingApi(ovsdb.ObservedOvs())
    assert DelPort("p", "br").command(api) == ("del_port", ("p",), (("bridge", "br"), ("if_exists", True)))
    assert DelBridge("br").command(api) == ("del_br", ("br", True), ())
    assert RemoveKeys("Interface", "p", "options", ("a", "b")).command(api) == (
        "db_remove",
        ("Interface", "p", "options", "a", "b"),
        (),
    )
    assert SetColumn("Port", "p", "tag", []).command(api) == ("db_set", ("Port", "p", ("tag", [])), ())
    assert AddBridge("br", "netdev").command(api) == (
        "add_br",
        ("br",),
        (("datapath_type", "netdev"), ("may_exist", True)),
    )
