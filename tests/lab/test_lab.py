"""The template's lab, for real: namespaces, addresses, MTU, SSH with strict host keys, FRR, eBGP."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from lintas.engine.settings import Settings
from lintas.workers.drivers.frr.secret_tokens import resolve_secrets
from lintas.workers.lab import LabState, bgp_peers, lab_device_facts, lab_facts, lab_status, vtysh, vtysh_json
from lintas.workers.model import load_model
from lintas.workers.render.env import Renderer
from lintas.workers.render.network import render_device

from .conftest import TEMPLATE, ip_json, needs_lab, run

pytestmark = needs_lab

SWITCHES = ["leaf-01", "leaf-02", "leaf-03", "leaf-04", "spine-01", "spine-02"]


def ssh(
    settings: Settings, device: str, *command: str, known_hosts: Path | None = None, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    f = lab_device_facts(settings, device)
    argv = [
        "ssh",
        "-i",
        str(f.key_file),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts or f.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        "-p",
        str(f.ssh_port),
        *extra,
        f"{f.username}@{f.mgmt_ip}",
        *command,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def test_namespaces_addresses_and_mtu(lab: tuple[Settings, LabState]) -> None:
    _settings, state = lab
    names = {e["name"] for e in ip_json("netns", "list")}  # type: ignore[union-attr]
    assert {f"lx-{n}" for n in SWITCHES} | {"lx-kvm-uat-01", "lx-osc-01"} <= names
    model = load_model(TEMPLATE)
    for link in model.links:
        for end in (link.spine, link.leaf):
            [entry] = ip_json("-n", f"lx-{end.device}", "addr", "show", "dev", end.port)  # type: ignore[misc]
            assert entry["mtu"] == 9216
            assert "UP" in entry["flags"]
            addrs = [f"{a['local']}/{a['prefixlen']}" for a in entry["addr_info"] if a["family"] == "inet"]
            assert addrs == [str(end.ip)]
    for name in SWITCHES:
        [eth0] = ip_json("-n", f"lx-{name}", "addr", "show", "dev", "eth0")  # type: ignore[misc]
        assert [a["local"] for a in eth0["addr_info"] if a["family"] == "inet"] == [str(model.devices[name].mgmt_ip.ip)]
        routes = ip_json("-n", f"lx-{name}", "route", "show", "default")
        assert routes == [], "a lab switch must not have a default route"
    # the root namespace: the bridge carries the gateway and forwards nothing elsewhere
    [br] = ip_json("addr", "show", "dev", "lxmgmt0")  # type: ignore[misc]
    assert [f"{a['local']}/{a['prefixlen']}" for a in br["addr_info"] if a["family"] == "inet"] == ["10.255.0.1/24"]
    assert Path("/proc/sys/net/ipv4/conf/lxmgmt0/forwarding").read_text().strip() == "0"
    assert state.phase == "up" and sorted(state.switches) == SWITCHES
    # the hosts' uplinks: the NIC with its own MTU, cabled to the leaf port
    [nic] = ip_json("-n", "lx-kvm-uat-01", "link", "show", "dev", "ens1f0")  # type: ignore[misc]
    assert nic["mtu"] == 9000
    [port] = ip_json("-n", "lx-leaf-01", "link", "show", "dev", "swp1")  # type: ignore[misc]
    assert port["mtu"] == 9216


def test_ping_across_a_p2p_link_at_full_mtu(lab: tuple[Settings, LabState]) -> None:
    # spine-01:swp1 10.250.16.44/31 -- leaf-01:swp51 10.250.16.45/31, DF set, 9216-byte packets
    out = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            "lx-spine-01",
            "ping",
            "-c",
            "2",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            str(9216 - 28),
            "10.250.16.45",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    too_big = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            "lx-spine-01",
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "-M",
            "do",
            "-s",
            str(9216 - 27),
            "10.250.16.45",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert too_big.returncode != 0


def test_ssh_with_strict_host_keys(lab: tuple[Settings, LabState], tmp_path: Path) -> None:
    settings, _ = lab
    res = ssh(settings, "leaf-01", "vtysh -c 'show version'; hostname; cat /etc/frr/frr.conf")
    assert res.returncode == 0, res.stderr
    assert "FRRouting 8" in res.stdout
    assert "leaf-01\n" in res.stdout  # the switch's own hostname (UTS namespace)
    assert "hostname leaf-01" in res.stdout and "frr defaults datacenter" in res.stdout
    assert "router bgp" not in res.stdout  # day 0: no routing config
    # the session runs inside the switch's network namespace
    res = ssh(settings, "spine-02", "ip -br addr show dev eth0")
    assert "10.255.0.12/24" in res.stdout, res.stderr

    facts = lab_device_facts(settings, "leaf-01")
    # a wrong host key for that address is refused
    wrong = tmp_path / "known_hosts_wrong"
    other = facts.known_hosts.read_text().splitlines()
    leaf2_key = next(line for line in other if ",leaf-02 " in line).split(" ", 1)[1]
    wrong.write_text(f"{facts.mgmt_ip} {leaf2_key}\n")
    res = ssh(settings, "leaf-01", "true", known_hosts=wrong)
    assert res.returncode == 255 and "host key" in res.stderr.lower(), res.stderr
    # an unknown host is never accepted either
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    res = ssh(settings, "leaf-01", "true", known_hosts=empty)
    assert res.returncode == 255 and "host key verification failed" in res.stderr.lower(), res.stderr
    # passwords are not offered at all
    res = ssh(settings, "leaf-01", "true", extra=("-o", "PreferredAuthentications=password,keyboard-interactive"))
    assert res.returncode == 255 and "permission denied" in res.stderr.lower(), res.stderr


def test_sshd_listens_only_on_the_management_address(lab: tuple[Settings, LabState]) -> None:
    out = subprocess.run(
        ["ip", "netns", "exec", "lx-leaf-02", "ss", "-Hltn", "sport", "=", ":22"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    listeners = [line.split()[3] for line in out if line.strip()]
    assert listeners == ["10.255.0.22:22"]


def test_facts_and_status(lab: tuple[Settings, LabState]) -> None:
    settings, _ = lab
    facts = lab_facts(settings)
    assert sorted(facts) == SWITCHES
    f = facts["spine-01"]
    assert (f.mgmt_ip, f.ssh_port, f.username, f.namespace) == ("10.255.0.11", 22, "root", "lx-spine-01")
    assert f.key_file == settings.home / "lab" / "keys" / "id_ed25519" and f.key_file.exists()
    assert f.known_hosts.read_text().count("ssh-ed25519") == len(SWITCHES) + 2  # and the two hosts
    assert (f.vty_socket_dir / "bgpd.vty").exists() and (f.config_dir / "frr.conf").exists()
    assert (f.device_config_dir, f.device_vty_socket_dir) == ("/etc/frr", "/run/frr")
    statuses = {s.name: s for s in run(lab_status(settings))}
    for name in SWITCHES:
        s = statuses[name]
        assert s.healthy, s
        assert set(s.daemons) == {"zebra", "bgpd", "bfdd"} and all(s.daemons.values())
        assert s.sshd and s.mgmt_reachable and s.bgp == {}
    assert statuses["osc-01"].kind == "host" and statuses["osc-01"].namespace_present
    assert "FRRouting" in run(vtysh("leaf-03", "show version"))


def _peer_state(device: str, peer: str) -> dict[str, str]:
    peers = bgp_peers(run(vtysh_json(device, "show bgp summary json")))
    return {af: p.get(peer, "absent") for af, p in peers.items()}


def test_rendered_configs_bring_ebgp_up(lab: tuple[Settings, LabState], tmp_path: Path) -> None:
    """Runs last in this module: it leaves BGP configured on spine-01 and leaf-01."""
    settings, _ = lab
    model = load_model(TEMPLATE)
    renderer = Renderer(TEMPLATE)
    for name in ("spine-01", "leaf-01"):
        conf = resolve_secrets(render_device(model, name, renderer)["frr.conf"], lambda ref: "Lab-Dummy-Pw-1")
        path = tmp_path / f"{name}.conf"
        path.write_text(conf)
        f = lab_device_facts(settings, name)
        res = subprocess.run(
            ["vtysh", "--vty_socket", str(f.vty_socket_dir), "--config_dir", str(f.config_dir), "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stdout + res.stderr
    deadline = time.monotonic() + 30
    want = {"ipv4Unicast": "Established", "l2VpnEvpn": "Established"}
    spine = leaf = {}
    while time.monotonic() < deadline:
        spine = _peer_state("spine-01", "10.250.16.45")
        leaf = _peer_state("leaf-01", "10.250.16.44")
        if spine == want and leaf == want:
            break
        time.sleep(0.5)
    assert spine == want and leaf == want, (spine, leaf)
    status = {s.name: s for s in run(lab_status(settings))}
    assert status["spine-01"].bgp and status["spine-01"].bgp["ipv4Unicast"]["10.250.16.45"] == "Established"
    # the loopbacks are exchanged: leaf-01 learns spine-01's loopback through BGP
    routes = ""
    while time.monotonic() < deadline + 10 and "proto bgp" not in routes:
        routes = subprocess.run(
            ["ip", "-n", "lx-leaf-01", "route", "show", "10.250.0.1"], capture_output=True, text=True, check=True
        ).stdout
        time.sleep(0.2)
    assert "proto bgp" in routes


@pytest.mark.parametrize("device", ["spine-01"])
def test_vtysh_over_ssh_sees_the_running_config(lab: tuple[Settings, LabState], device: str) -> None:
    settings, _ = lab
    res = ssh(settings, device, "vtysh -c 'show running-config'")
    assert res.returncode == 0 and f"hostname {device}" in res.stdout, res.stderr
