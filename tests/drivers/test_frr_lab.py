"""The FRR driver against the real lab: 2 spines + 4 leaves, FRR 8.4, sshd, this machine's kernel.

One lab for the module. ``fabric`` commits the template's rendered configs to all six
switches once (no revert timer) and measures the time to BGP Established; the tests
after it change leaf-04 (and leaf-03) and always bring it back to that baseline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from nornir.core import Nornir
from nornir.core.inventory import ConnectionOptions, Defaults, Groups, Host, Hosts, Inventory
from nornir.core.plugins.connections import ConnectionPluginRegister
from nornir.plugins.runners import ThreadedRunner
from nornir_napalm.plugins.tasks import napalm_get

from lintas.engine.settings import Settings
from lintas.workers.drivers.frr.driver import FrrDriver
from lintas.workers.drivers.frr.errors import FrrCommitConfirmError, FrrCommitError, FrrHostKeyError
from lintas.workers.lab import lab_device_facts
from lintas.workers.model.model import InfraModel

from .conftest import SWITCHES, driver_args, with_extra_vni

pytestmark = [pytest.mark.integration]

ESTABLISHED_WITHIN_S = 40.0
Connect = Callable[..., FrrDriver]


def fabric_up(drivers: dict[str, FrrDriver]) -> bool:
    """Every BGP session of every switch Established, with IPv4 and EVPN prefixes received."""
    for d in drivers.values():
        peers = d.get_bgp_neighbors()["global"]["peers"]
        if not peers:
            return False
        for p in peers.values():
            afs = p["address_family"]
            if not (p["is_up"] and afs.get("ipv4", {}).get("received_prefixes", 0) > 0 and "l2vpn_evpn" in afs):
                return False
    return True


@pytest.fixture(scope="module")
def fabric(
    lab: Settings,
    connect: Connect,
    rendered: dict[str, dict[str, str]],
    password: str,
) -> Iterator[dict[str, Any]]:
    """The template's configs committed everywhere at once; timings and the first diffs recorded."""
    drivers = {name: connect(name) for name in SWITCHES}
    diffs = {}
    for name, d in drivers.items():
        d.load_replace_candidate(config=rendered[name])
        diffs[name] = d.compare_config()
    start = time.monotonic()

    def commit(name: str) -> float:
        t = time.monotonic()
        drivers[name].commit_config(message="day 1 from the template")
        return time.monotonic() - t

    with ThreadPoolExecutor(len(SWITCHES)) as pool:
        commit_s = dict(zip(SWITCHES, pool.map(commit, SWITCHES), strict=True))
    committed = time.monotonic() - start
    while not fabric_up(drivers) and time.monotonic() - start < ESTABLISHED_WITHIN_S:
        time.sleep(0.25)
    yield {
        "drivers": drivers,
        "diffs": diffs,
        "commit_s": commit_s,
        "committed_s": committed,
        "established_s": time.monotonic() - start,
        "up": fabric_up(drivers),
    }


def test_host_keys_are_checked_against_known_hosts(lab: Settings, tmp_path: Path) -> None:
    facts = lab_device_facts(lab, "leaf-01")
    lines = facts.known_hosts.read_text().splitlines()
    leaf2_key = next(line for line in lines if ",leaf-02 " in line).split(" ", 1)[1]
    wrong = tmp_path / "wrong"
    wrong.write_text(f"{facts.mgmt_ip} {leaf2_key}\n")
    empty = tmp_path / "empty"
    empty.write_text("")
    for known_hosts, match in ((wrong, "does not match"), (empty, "not in"), (tmp_path / "absent", "does not exist")):
        d = FrrDriver(**driver_args(lab, "leaf-01", known_hosts=str(known_hosts)))
        with pytest.raises(FrrHostKeyError, match=match):
            d.open()
        assert d.is_alive() == {"is_alive": False}
    good = FrrDriver(**driver_args(lab, "leaf-01"))
    good.open()
    try:
        assert good.is_alive() == {"is_alive": True}
        assert good.get_facts()["hostname"] == "leaf-01"
    finally:
        good.close()


def test_full_fabric_commit_reaches_established(
    fabric: dict[str, Any], password: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, diff in fabric["diffs"].items():
        assert "[frr] frr-reload.py --test" in diff and "[linux] kernel mode" in diff, name
        assert password not in diff and "password ****" in diff, name
    assert "+ br10010: create bridge" in fabric["diffs"]["leaf-01"] or "+ bridge: create" in fabric["diffs"]["leaf-01"]
    assert fabric["up"], f"BGP not Established everywhere within {ESTABLISHED_WITHIN_S} s"
    with capsys.disabled():
        print(
            f"\nfull-fabric commit: {fabric['committed_s']:.1f} s wall for 6 switches in parallel "
            f"(per device {min(fabric['commit_s'].values()):.1f}-{max(fabric['commit_s'].values()):.1f} s); "
            f"BGP underlay + EVPN Established everywhere {fabric['established_s']:.1f} s after the commit started"
        )
    assert fabric["established_s"] < ESTABLISHED_WITHIN_S


def test_the_same_candidate_again_changes_nothing(fabric: dict[str, Any], rendered: dict[str, dict[str, str]]) -> None:
    for name, d in fabric["drivers"].items():
        d.load_replace_candidate(config=rendered[name])
        assert d.compare_config() == "", name
        assert not d.has_pending_commit()
    d = fabric["drivers"]["leaf-01"]
    d.discard_config()
    assert d.get_config(retrieve="candidate")["candidate"] == ""


def test_vnis_carry_the_remote_vteps_of_the_other_leaves(fabric: dict[str, Any], model: InfraModel) -> None:
    leaves = [n for n in SWITCHES if n.startswith("leaf")]
    expected: dict[str, dict[int, list[str]]] = {}
    for leaf in leaves:
        mine = set(model.networks_by_leaf.get(leaf, ()))
        expected[leaf] = {
            model.networks[net].vni: sorted(
                (
                    str(model.devices[other].vtep)
                    for other in leaves
                    if other != leaf and net in model.networks_by_leaf.get(other, ())
                ),
                key=lambda ip: tuple(int(x) for x in ip.split(".")),
            )
            for net in mine
        }
    deadline = time.monotonic() + 20
    got: dict[str, dict[int, list[str]]] = {}
    while time.monotonic() < deadline:
        got = {
            leaf: {
                vni: v["remote_vteps"]
                for vni, v in fabric["drivers"][leaf].get_evpn_vnis().items()
                if v["type"] == "L2"
            }
            for leaf in leaves
        }
        if got == expected:
            break
        time.sleep(0.5)
    assert got == expected
    vnis = fabric["drivers"]["leaf-01"].get_evpn_vnis()
    infra = model.networks["infra-tunnel"]
    assert vnis[infra.vni]["vlan"] == infra.vlan and vnis[infra.vni]["local_vtep"] == str(model.devices["leaf-01"].vtep)
    peers = fabric["drivers"]["spine-01"].get_evpn_peers()
    assert len(peers) == 4 and all(p["is_up"] for p in peers.values())
    assert isinstance(fabric["drivers"]["leaf-01"].get_evpn_macs(infra.vni), dict)


def test_getters_and_kernel_facts(fabric: dict[str, Any], password: str) -> None:
    d = fabric["drivers"]["leaf-01"]
    facts = d.get_facts()
    assert facts["vendor"] == "FRRouting" and "swp51" in facts["interface_list"]
    ifs = d.get_interfaces()
    assert ifs["swp51"]["mtu"] == 9216 and ifs["swp51"]["is_up"] and ifs["swp51"]["description"] == "P2P_spine-01_swp1"
    assert d.get_interfaces_ip()["lo"]["ipv4"]["10.250.1.11"] == {"prefix_length": 32}
    kernel = d.get_kernel_facts()
    applied = kernel["applied"]
    assert applied["message"] == "day 1 from the template"
    if kernel["mode"] == "traditional":  # this machine: no VRF, no 802.1Q, no VLAN-aware bridge
        assert any("swp1: tagged VLANs 10,20" in u for u in applied["unsupported_on_this_kernel"])
        assert ifs["br10200"]["mac_address"] == "00:1c:73:00:00:99" and ifs["br10200"]["mtu"] == 9000
    config = d.get_config()
    assert "router bgp 65111" in config["running"] and "! linux: kernel mode" in config["running"]
    assert password in config["running"]  # the device's own running config holds it
    assert password not in d.get_config(sanitized=True)["running"]
    assert "router bgp 65111" in config["startup"]  # written to /etc/frr/frr.conf
    assert d.cli(["show bgp summary json"], encoding="json")["show bgp summary json"]


def test_revert_timer_restores_without_confirm_even_when_the_engine_is_gone(
    lab: Settings, fabric: dict[str, Any], rendered: dict[str, dict[str, str]]
) -> None:
    baseline, changed = rendered["leaf-04"], with_extra_vni(rendered["leaf-04"])
    d = FrrDriver(**driver_args(lab, "leaf-04"))
    d.open()
    d.load_replace_candidate(config=changed)
    t = time.monotonic()
    d.commit_config(revert_in=5)
    assert d.has_pending_commit() and "br10999" in d.get_interfaces()
    d.close()  # the engine is gone: nobody will confirm
    watcher = fabric["drivers"]["leaf-04"]
    while watcher.has_pending_commit() and time.monotonic() - t < 15:
        time.sleep(0.25)
    assert not watcher.has_pending_commit()
    assert 5 <= time.monotonic() - t < 9
    assert "br10999" not in watcher.get_interfaces()
    watcher.load_replace_candidate(config=baseline)
    assert watcher.compare_config() == ""
    with pytest.raises(FrrCommitConfirmError, match="too late"):
        watcher.confirm_commit()


def test_confirmed_commit_stays_and_rollback_restores_the_checkpoint(
    fabric: dict[str, Any], rendered: dict[str, dict[str, str]]
) -> None:
    d = fabric["drivers"]["leaf-04"]
    baseline, changed = rendered["leaf-04"], with_extra_vni(rendered["leaf-04"])
    d.load_replace_candidate(config=changed)
    d.commit_config(revert_in=30)
    assert d.has_pending_commit()
    with pytest.raises(FrrCommitError, match="pending"):
        d.load_replace_candidate(config=baseline)
        d.commit_config()
    d.confirm_commit()
    assert not d.has_pending_commit()
    with pytest.raises(FrrCommitConfirmError, match="no commit is pending"):
        d.confirm_commit()
    d.load_replace_candidate(config=changed)
    assert d.compare_config() == ""
    assert 10999 in d.get_evpn_vnis()
    d.discard_config()
    d.rollback()
    assert 10999 not in d.get_evpn_vnis() and "br10999" not in d.get_interfaces()
    d.load_replace_candidate(config=baseline)
    assert d.compare_config() == ""
    # rollback also cancels a pending timer
    d.load_replace_candidate(config=changed)
    d.commit_config(revert_in=60)
    d.rollback()
    assert not d.has_pending_commit()
    d.load_replace_candidate(config=baseline)
    assert d.compare_config() == ""


def test_a_failing_apply_restores_the_checkpoint(
    fabric: dict[str, Any], rendered: dict[str, dict[str, str]], password: str
) -> None:
    import json

    d = fabric["drivers"]["leaf-04"]
    bad = json.loads(with_extra_vni(rendered["leaf-04"])["linux.json"])
    bad["vxlans"] = [dict(v, vni=10010) if v["name"] == "vni10999" else v for v in bad["vxlans"]]  # VNI twice
    d.load_replace_candidate(config={"frr.conf": rendered["leaf-04"]["frr.conf"], "linux.json": json.dumps(bad)})
    with pytest.raises(FrrCommitError, match="restored to checkpoint") as err:
        d.commit_config()
    assert password not in str(err.value)
    assert not d.has_pending_commit() and "br10999" not in d.get_interfaces()
    d.load_replace_candidate(config=rendered["leaf-04"])
    assert d.compare_config() == ""


def test_a_candidate_for_another_switch_is_refused(fabric: dict[str, Any], rendered: dict[str, dict[str, str]]) -> None:
    d = fabric["drivers"]["leaf-03"]
    d.load_replace_candidate(config=rendered["leaf-04"])
    diff = d.compare_config()
    assert "! error: this candidate is for the switch whose eth0 is 10.255.0.24/24" in diff
    with pytest.raises(FrrCommitError, match="refused"):
        d.commit_config()
    d.load_replace_candidate(config=rendered["leaf-03"])
    assert d.compare_config() == ""


def test_merge_adds_without_removing(
    lab: Settings, connect: Connect, fabric: dict[str, Any], rendered: dict[str, dict[str, str]], password: str
) -> None:
    d = connect("leaf-03", secret_lookup=lambda ref: password)
    d.load_merge_candidate(config={"frr.conf": "ip prefix-list LINTAS-MERGE seq 5 permit 198.51.100.0/24\n"})
    assert (
        d.compare_config() == "[frr] frr-reload.py --test\n+ ip prefix-list LINTAS-MERGE seq 5 permit 198.51.100.0/24\n"
    )
    d.commit_config(message="merge")
    d.load_replace_candidate(config=rendered["leaf-03"])
    assert "LINTAS-MERGE" in d.compare_config()
    d.rollback()
    assert d.compare_config() == ""


def test_secrets_never_reach_the_logs(
    lab: Settings,
    fabric: dict[str, Any],
    rendered: dict[str, dict[str, str]],
    password: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    d = FrrDriver(**driver_args(lab, "leaf-02"))
    d.open()
    try:
        d.load_replace_candidate(config=with_extra_vni(rendered["leaf-02"]))
        diff = d.compare_config()
        d.commit_config(revert_in=30)
        d.rollback()
        d.load_replace_candidate(config=rendered["leaf-02"])
        assert d.compare_config() == ""
        assert password not in diff and password not in d.get_config(retrieve="candidate")["candidate"]
    finally:
        d.close()
    assert "lintas.drivers.frr" in caplog.text and "committed checkpoint" in caplog.text
    assert password not in caplog.text


def test_nornir_uses_the_driver_as_platform_frr(lab: Settings, fabric: dict[str, Any]) -> None:
    ConnectionPluginRegister.auto_register()
    hosts = Hosts()
    for name in ("spine-01", "leaf-01"):
        args = driver_args(lab, name)
        hosts[name] = Host(
            name=name,
            hostname=args["hostname"],
            username=args["username"],
            platform="frr",
            connection_options={"napalm": ConnectionOptions(extras={"optional_args": args["optional_args"]})},
        )
    nr = Nornir(
        inventory=Inventory(hosts=hosts, groups=Groups(), defaults=Defaults()), runner=ThreadedRunner(num_workers=2)
    )
    try:
        result = nr.run(task=napalm_get, getters=["facts", "bgp_neighbors"])
    finally:
        nr.close_connections()
    assert not result.failed, {h: r[0].exception for h, r in result.items()}
    assert result["leaf-01"][0].result["facts"]["hostname"] == "leaf-01"
    peers = result["spine-01"][0].result["bgp_neighbors"]["global"]["peers"]
    assert len(peers) == 4 and all(p["is_up"] for p in peers.values())
