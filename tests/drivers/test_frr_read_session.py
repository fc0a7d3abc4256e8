"""Verification's reads of a real lab switch (issue 16): one SSH session serves every getter, the
whole state verify needs comes in one exec (one ``vtysh`` with several ``-c``) and equals what the
separate napalm getters report, and a switch's probes run at once in one exec.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from lintas.engine.settings import Settings
from lintas.workers.drivers.frr import ssh as frr_ssh
from lintas.workers.drivers.frr.driver import FrrDriver
from lintas.workers.model.model import InfraModel

from .conftest import SWITCHES

pytestmark = [pytest.mark.integration]

Connect = Callable[..., FrrDriver]


def _up(d: FrrDriver) -> bool:
    peers = d.get_bgp_neighbors()["global"]["peers"]
    return bool(peers) and all(p["is_up"] and "l2vpn_evpn" in p["address_family"] for p in peers.values())


@pytest.fixture(scope="module")
def fabric(lab: Settings, connect: Connect, rendered: dict[str, dict[str, str]], password: str) -> dict[str, FrrDriver]:
    drivers = {name: connect(name) for name in SWITCHES}

    def commit(name: str) -> None:
        drivers[name].load_replace_candidate(config=rendered[name])
        drivers[name].commit_config(message="issue 16 reads")

    with ThreadPoolExecutor(len(SWITCHES)) as pool:
        list(pool.map(commit, SWITCHES))
    deadline = time.monotonic() + 60
    while not all(_up(d) for d in drivers.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return drivers


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Counts SSH handshakes (``SshSession.open``) and execs (``SshSession.run``) in this process."""
    n = {"open": 0, "run": 0}
    real_open, real_run = frr_ssh.SshSession.open, frr_ssh.SshSession.run

    def spy_open(self: frr_ssh.SshSession) -> None:
        n["open"] += 1
        real_open(self)

    def spy_run(self: frr_ssh.SshSession, *a: Any, **kw: Any) -> frr_ssh.Result:
        n["run"] += 1
        return real_run(self, *a, **kw)

    monkeypatch.setattr(frr_ssh.SshSession, "open", spy_open)
    monkeypatch.setattr(frr_ssh.SshSession, "run", spy_run)
    yield n


def test_one_ssh_session_serves_every_getter_of_a_switch(
    fabric: dict[str, FrrDriver], connect: Connect, counted: dict[str, int]
) -> None:
    d = connect("leaf-01")
    assert counted["open"] == 1
    assert d._ssh is not None
    transport = d._ssh._client.get_transport()  # type: ignore[union-attr]
    d.get_facts()
    d.get_interfaces()
    d.get_interfaces_ip()
    d.get_bgp_neighbors()
    d.get_ipv4_routes()
    d.get_evpn_vnis()
    d.get_evpn_peers()
    d.get_kernel_facts()
    d.get_pending_commit()
    d.get_fabric_state()
    d.ping_many([{"destination": "10.250.1.12", "source": "10.250.1.11", "size": 56, "df": False}])
    assert counted["open"] == 1, "a getter opened a new SSH session"
    assert d._ssh._client.get_transport() is transport  # type: ignore[union-attr]


def test_the_fabric_state_is_one_exec_and_equals_the_getters(
    fabric: dict[str, FrrDriver], counted: dict[str, int]
) -> None:
    for name in ("leaf-01", "spine-01"):
        d = fabric[name]
        d.get_kernel_facts()  # capabilities read once per session
        before = counted["run"]
        st = d.get_fabric_state(evpn=name.startswith("leaf"))
        assert counted["run"] - before == 1, f"{name}: the state took more than one exec"
        assert st["bgp"]["global"]["peers"].keys() == d.get_bgp_neighbors()["global"]["peers"].keys()
        assert {ip: p["is_up"] for ip, p in st["bgp"]["global"]["peers"].items()} == {
            ip: p["is_up"] for ip, p in d.get_bgp_neighbors()["global"]["peers"].items()
        }
        assert st["routes"] == d.get_ipv4_routes()
        ifs = d.get_interfaces()
        assert {k: (v["is_up"], v["mtu"]) for k, v in st["interfaces"].items()} == {
            k: (v["is_up"], v["mtu"]) for k, v in ifs.items()
        }
        assert st["kernel"]["capabilities"] == d.get_kernel_facts()["capabilities"]
        if name.startswith("leaf"):
            assert st["vnis"] and st["vnis"] == d.get_evpn_vnis()
        assert any(
            isinstance(b, dict) and "tableVersion" in b
            for body in st["bgp_summary"].values()
            for b in body.values()
            if isinstance(body, dict)
        )


def test_probes_run_at_once_in_one_exec(
    fabric: dict[str, FrrDriver], model: InfraModel, counted: dict[str, int]
) -> None:
    d = fabric["leaf-01"]
    me = str(model.devices["leaf-01"].vtep)
    others = [str(model.devices[n].vtep) for n in ("leaf-02", "leaf-03", "leaf-04")]
    probes = [{"destination": o, "source": me, "size": model.fabric.mtu - 28, "df": True} for o in others]
    # larger than the MTU with DF set: refused locally (nothing leaves the switch), so it fails
    probes.append({"destination": others[0], "source": me, "size": model.fabric.mtu + 100, "df": True})
    d.get_kernel_facts()
    before, t = counted["run"], time.monotonic()
    res = d.ping_many(probes)
    assert counted["run"] - before == 1 and time.monotonic() - t < 4  # at once, not 4 x the timeout
    assert [r["success"]["packet_loss"] for r in res[:3]] == [0, 0, 0], res
    assert "success" not in res[3] or res[3]["success"]["packet_loss"] == 1
