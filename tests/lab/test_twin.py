"""Twins (issue 18's foundation), for real: beside the production lab, with the same modelled
management addresses, reached only through their own management namespace, nothing in the root
namespace, coexisting, and removed completely by `twin down`, by the next twin after a SIGKILL,
and by `lab down`.

Runs against the production lab (one per module, ``lab``): run it under ``flock /tmp/lintas-lab.lock``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from lintas.engine.settings import Settings
from lintas.workers.drivers.frr.driver import FrrDriver
from lintas.workers.drivers.frr.ssh import SshSession
from lintas.workers.lab import LabError, LabState, find_tools, lab_device_facts, lab_down
from lintas.workers.lab.netns import orphan_mounts
from lintas.workers.lab.paths import TWIN_ROOT
from lintas.workers.lab.twin import TwinFacts, twin_down, twin_facts, twin_up
from lintas.workers.lab.twin_life import TwinRecord, find_twin, me, save_record, sweep_twins, twin_statuses
from lintas.workers.model import load_model
from lintas.workers.reach.credentials import find_login, registration_file, twin_sources
from lintas.workers.reach.netns import socket_factory
from lintas.workers.render.env import Renderer
from lintas.workers.render.network import render_device

from .conftest import ROOT, TEMPLATE, ip_json, lab_process_pids, needs_lab, run

pytestmark = needs_lab

SLICE = frozenset({"spine-01", "spine-02", "leaf-01"})
PASSWORD_ENV = "FABRIC_BGP_PASSWORD"


def root_snapshot() -> tuple[list[tuple[str, tuple[str, ...]]], list[object]]:
    """The root namespace's links with their addresses, and its routes (all tables)."""
    addrs = sorted(
        (str(e["ifname"]), tuple(sorted(f"{a['local']}/{a['prefixlen']}" for a in e.get("addr_info", []))))
        for e in ip_json("addr", "show")  # type: ignore[union-attr]
    )
    routes = sorted(ip_json("route", "show", "table", "all"), key=json.dumps)  # type: ignore[arg-type]
    return addrs, routes


def namespaces() -> set[str]:
    return {str(e["name"]) for e in ip_json("netns", "list")}  # type: ignore[union-attr]


def ns_inode(namespace: str) -> int:
    return os.stat(f"/run/netns/{namespace}").st_ino


def production_inodes() -> set[int]:
    return {ns_inode(n) for n in namespaces() if n.startswith("lx-")}


def strays() -> dict[int, str]:
    """Lab-like daemons (FRR, sshd, ...) outside the root namespace that are not the production lab's."""
    prod = production_inodes()
    out = {}
    for pid, comm in lab_process_pids().items():
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino not in prod:
                out[pid] = comm
        except OSError:
            continue
    return out


def assert_twin_gone(prefix: str, settings: Settings, name: str | None) -> None:
    assert not {n for n in namespaces() if n.startswith(prefix + "-")}
    assert not (TWIN_ROOT / prefix).exists()
    assert orphan_mounts(f"lintas-twin/{prefix}/") == {}
    if name is not None:
        assert not registration_file(settings.home, f"twin-{name}").exists()


def session(facts: TwinFacts | None, settings: Settings, device: str) -> SshSession:
    """An SSH session to ``device``: through the twin's namespace with ``facts``, else production's."""
    if facts is None:
        f = lab_device_facts(settings, device)
        s = SshSession(f.mgmt_ip, f.ssh_port, f.username, key_file=str(f.key_file), known_hosts=str(f.known_hosts))
    else:
        target = facts.target(device)
        [source] = twin_sources(settings, facts.name)
        login = find_login(target, [source])
        assert login is not None and login.key_file is not None and login.known_hosts is not None
        s = SshSession(
            target.address,
            login.port or 22,
            login.username or "root",
            key_file=str(login.key_file),
            known_hosts=str(login.known_hosts),
            sock_factory=socket_factory(target, 22, settings),
        )
    s.open()
    return s


def netns_of_session(s: SshSession) -> int:
    return int(s.run("stat -L -c %i /proc/self/ns/net", check=True).stdout.strip())


@pytest.fixture(scope="module")
def twin(lab: tuple[Settings, LabState]) -> Iterator[tuple[Settings, TwinRecord, object]]:
    """A slice of the template (2 spines, 1 leaf) twinned beside the module's production lab."""
    settings, _ = lab
    assert strays() == {} and twin_statuses() == [], "leftovers of another twin on this machine"
    before = root_snapshot()
    started = time.monotonic()
    record = run(twin_up(settings, TEMPLATE, name=f"t-{secrets.token_hex(3)}", only=SLICE))
    print(f"twin of {len(SLICE)} switches up in {time.monotonic() - started:.2f} s")
    try:
        yield settings, record, before
    finally:
        with contextlib.suppress(LabError):  # already removed by the test
            run(twin_down(settings, record.name))


def test_a_twin_beside_the_lab_adds_nothing_to_the_root_namespace(
    twin: tuple[Settings, TwinRecord, object],
) -> None:
    _settings, record, before = twin
    assert root_snapshot() == before, "the twin changed a link, an address or a route of the root namespace"
    p = record.prefix
    assert {f"{p}-leaf-01", f"{p}-spine-01", f"{p}-spine-02", f"{p}-mgmt"} <= namespaces()
    assert record.phase == "up" and record.holder is None and sorted(record.switches) == sorted(SLICE)
    # the management network: the production lab's addresses, inside the twin's own namespace
    [br] = ip_json("-n", f"{p}-mgmt", "addr", "show", "dev", f"{p}mgmt0")  # type: ignore[misc]
    assert [f"{a['local']}/{a['prefixlen']}" for a in br["addr_info"]] == ["10.255.0.1/24"]
    routes = ip_json("-n", f"{p}-mgmt", "route", "show")
    assert [(r["dst"], r["dev"]) for r in routes] == [("10.255.0.0/24", f"{p}mgmt0")]  # type: ignore[index,union-attr]
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.disable_ipv6"):
        out = subprocess.run(["ip", "netns", "exec", f"{p}-mgmt", "sysctl", "-n", key], capture_output=True, text=True)
        assert out.stdout.strip() == ("0" if "forward" in key else "1")
    for ns in (f"{p}-leaf-01", "lx-leaf-01"):
        [eth0] = ip_json("-n", ns, "addr", "show", "dev", "eth0")  # type: ignore[misc]
        assert [a["local"] for a in eth0["addr_info"] if a["family"] == "inet"] == ["10.255.0.21"]
    # the twin's management network and production's are not connected: production's leaf-02
    # (10.255.0.22, not in the twin) does not answer from the twin's leaf, but does from production's
    ping = ["ping", "-n", "-c", "1", "-W", "1", "10.255.0.22"]
    assert subprocess.run(["ip", "netns", "exec", "lx-leaf-01", *ping], capture_output=True).returncode == 0
    assert subprocess.run(["ip", "netns", "exec", f"{p}-leaf-01", *ping], capture_output=True).returncode != 0


def test_the_twin_is_reached_through_its_namespace_and_production_directly(
    twin: tuple[Settings, TwinRecord, object],
) -> None:
    settings, record, _ = twin
    facts = twin_facts(record.name)
    assert facts.mgmt_namespace == f"{record.prefix}-mgmt" and sorted(facts.devices) == sorted(SLICE)
    marker = facts.devices["leaf-01"].config_dir / "twin-marker"
    marker.write_text(record.name + "\n")
    t, prod = session(facts, settings, "leaf-01"), session(None, settings, "leaf-01")
    try:
        assert netns_of_session(t) == ns_inode(f"{record.prefix}-leaf-01")
        assert t.run("cat /etc/frr/twin-marker", check=True).stdout.strip() == record.name
        assert netns_of_session(prod) == ns_inode("lx-leaf-01")
        assert prod.run("test -e /etc/frr/twin-marker").returncode == 1
        for s in (t, prod):  # the same switch, as far as it can tell
            assert s.run("hostname", check=True).stdout.strip() == "leaf-01"
    finally:
        t.close()
        prod.close()
    # the twin's login does not open production's switch: the host keys differ (strict known_hosts)
    [source] = twin_sources(settings, record.name)
    login = find_login(facts.target("leaf-01"), [source])
    assert login is not None and login.known_hosts is not None
    f = lab_device_facts(settings, "leaf-01")
    wrong = SshSession(f.mgmt_ip, 22, "root", key_file=str(login.key_file), known_hosts=str(login.known_hosts))
    with pytest.raises(Exception, match="host key"):
        wrong.open()


def test_a_deploy_through_the_twin_leaves_production_byte_identical(
    twin: tuple[Settings, TwinRecord, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The FRR driver, given the twin's socket factory, commits leaf-01's rendered config to the twin."""
    settings, record, _ = twin
    monkeypatch.setenv(PASSWORD_ENV, "Lx-" + secrets.token_hex(8))
    facts = twin_facts(record.name)
    prod_conf = lab_device_facts(settings, "leaf-01").config_dir / "frr.conf"
    prod_before = prod_conf.read_bytes()
    twin_conf = facts.devices["leaf-01"].config_dir / "frr.conf"
    bundle = render_device(load_model(TEMPLATE), "leaf-01", Renderer(TEMPLATE))
    target = facts.target("leaf-01")
    d = FrrDriver(
        target.address,
        "root",
        "",
        optional_args={
            "key_file": str(facts.devices["leaf-01"].key_file),
            "known_hosts": str(facts.devices["leaf-01"].known_hosts),
            "sock_factory": socket_factory(target, 22, settings),
        },
    )
    d.open()
    try:
        assert d.get_facts()["hostname"] == "leaf-01"
        d.load_replace_candidate(config=bundle)
        assert d.compare_config() != ""
        d.commit_config(message="twin test")
        assert d.compare_config() == ""
    finally:
        d.close()
    assert "router bgp" in twin_conf.read_text()
    assert prod_conf.read_bytes() == prod_before and "router bgp" not in prod_before.decode()
    # and the deployed VXLAN/bridge state is in the twin's leaf only
    assert ip_json("-n", f"{record.prefix}-leaf-01", "link", "show", "type", "vxlan") != []
    assert ip_json("-n", "lx-leaf-01", "link", "show", "type", "vxlan") == []


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LINTAS_HOME": str(settings.home)}
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "lintas"), "twin", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_two_twins_coexist_and_twin_down_leaves_nothing(twin: tuple[Settings, TwinRecord, object]) -> None:
    settings, first, before = twin
    name = f"t-{secrets.token_hex(3)}"
    up = _cli(settings, "up", str(TEMPLATE), "--name", name, "--switch", "spine-01", "--switch", "leaf-01")
    assert up.returncode == 0, up.stderr
    listed = {r["name"]: r for r in json.loads(_cli(settings, "list", "--json").stdout)}
    assert listed[first.name]["alive"] and listed[name]["alive"] and listed[name]["switches"] == ["leaf-01", "spine-01"]
    second = twin_facts(name)
    assert second.prefix != first.prefix and root_snapshot() == before
    sessions = [session(twin_facts(first.name), settings, "leaf-01"), session(second, settings, "leaf-01")]
    sessions.append(session(None, settings, "leaf-01"))
    try:
        seen = [netns_of_session(s) for s in sessions]
    finally:
        for s in sessions:
            s.close()
    assert seen == [ns_inode(f"{first.prefix}-leaf-01"), ns_inode(f"{second.prefix}-leaf-01"), ns_inode("lx-leaf-01")]
    assert len(set(seen)) == 3
    # a second name is refused while the first exists
    again = _cli(settings, "up", str(TEMPLATE), "--name", name, "--switch", "leaf-01")
    assert again.returncode == 2 and "exists" in again.stderr
    down = _cli(settings, "down", name)
    assert down.returncode == 0, down.stderr
    assert_twin_gone(second.prefix, settings, name)
    assert root_snapshot() == before and strays() == {}
    # the first twin is untouched
    s = session(twin_facts(first.name), settings, "spine-02")
    try:
        assert netns_of_session(s) == ns_inode(f"{first.prefix}-spine-02")
    finally:
        s.close()


BUILDER = """
import asyncio, sys, time
from pathlib import Path
from lintas.engine.settings import Settings
from lintas.workers.lab.twin import twin_up
rec = asyncio.run(twin_up(Settings(home=Path(sys.argv[1])), Path(sys.argv[2]), name=sys.argv[3],
                          only=frozenset({"spine-01", "leaf-01"}), hold=True))
print(rec.prefix, flush=True)
time.sleep(600)
"""


def _killed_builder(settings: Settings, *, mid_build: bool, builder: str = BUILDER) -> tuple[str, str]:
    """A process that builds a held twin (``builder``: its script), SIGKILLed mid-build or once the
    twin is up: (prefix, name)."""
    name = f"k-{secrets.token_hex(3)}"
    proc = subprocess.Popen(
        [sys.executable, "-c", builder, str(settings.home), str(TEMPLATE), name], stdout=subprocess.PIPE, text=True
    )
    try:
        prefix = ""
        if mid_build:  # as soon as its first namespace exists
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not prefix:
                for st in twin_statuses():
                    mine = st.record is not None and st.record.name == name
                    if mine and any(n.startswith(st.prefix + "-") for n in namespaces()):
                        prefix = st.prefix
                time.sleep(0.002)
        else:
            assert proc.stdout is not None
            prefix = proc.stdout.readline().strip()
        assert prefix, "the builder never got going"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    [st] = [st for st in twin_statuses() if st.prefix == prefix]
    assert not st.alive, "a twin whose holder was SIGKILLed must count as dead"
    return prefix, name


def test_twin_down_refuses_a_twin_another_live_process_holds(twin: tuple[Settings, TwinRecord, object]) -> None:
    """As a run's twin stage holds its twin: held by this (pytest) process, `lintas twin down NAME` from
    another process is refused and the twin keeps working; the holder itself may remove it, and
    ``--force`` is the operator's way through (not run here: the module's twin is shared)."""
    settings, first, _ = twin
    record = find_twin(first.name)
    save_record(record.model_copy(update={"holder": me()}))
    try:
        down = _cli(settings, "down", first.name)
        assert down.returncode == 2 and f"held by process {os.getpid()}" in down.stderr, down.stderr
        assert "--force" in down.stderr
        assert {r["name"]: r["alive"] for r in json.loads(_cli(settings, "list", "--json").stdout)}[first.name]
        s = session(twin_facts(first.name), settings, "leaf-01")
        try:
            assert netns_of_session(s) == ns_inode(f"{first.prefix}-leaf-01")  # untouched
        finally:
            s.close()
    finally:
        save_record(record)


@pytest.mark.parametrize("mid_build", [True, False], ids=["mid-build", "after-up"])
def test_a_sigkilled_builder_leaves_nothing_the_next_twin_cannot_clean(
    twin: tuple[Settings, TwinRecord, object], mid_build: bool
) -> None:
    settings, first, before = twin
    prefix, name = _killed_builder(settings, mid_build=mid_build)
    assert any(n.startswith(prefix + "-") for n in namespaces())
    removed = run(sweep_twins(find_tools()))  # what every `twin up` does first
    assert [r.prefix for r in removed] == [prefix]
    assert_twin_gone(prefix, settings, name)
    assert strays() == {} and root_snapshot() == before
    assert [st.record.name for st in twin_statuses() if st.record] == [first.name]  # the live one stays


def test_lab_down_removes_dead_twins_and_leaves_nothing(twin: tuple[Settings, TwinRecord, object]) -> None:
    """Last in the module: `lab down` removes the production lab and every dead twin; a twin made by
    `twin up` (alive until `twin down`) stays, and `twin down --all` then leaves nothing either."""
    settings, first, _ = twin
    dead, dead_name = _killed_builder(settings, mid_build=False)
    report = run(lab_down(settings))
    assert report.twins == 1
    assert_twin_gone(dead, settings, dead_name)
    assert not {n for n in namespaces() if n.startswith("lx-")}
    live = twin_facts(first.name)
    s = session(live, settings, "leaf-01")
    try:
        assert netns_of_session(s) == ns_inode(f"{first.prefix}-leaf-01")
    finally:
        s.close()
    down = _cli(settings, "down", "--all")  # alive or not
    assert down.returncode == 0 and f"twin down: {first.name} ({first.prefix})" in down.stdout, down.stderr
    assert_twin_gone(first.prefix, settings, first.name)
    assert twin_statuses() == [] and strays() == {} and lab_process_pids() == {}
    assert orphan_mounts("lintas-twin/") == {}
