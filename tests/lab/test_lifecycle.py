"""up is idempotent and repairs; down removes everything, even after a crash; prerequisites are named."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lintas.engine.settings import Settings
from lintas.workers.lab import LabError, PrerequisiteError, find_tools, lab_down, lab_status, lab_up
from lintas.workers.lab.cmd import PROGRAMS
from lintas.workers.lab.hypervisor import mount_points
from lintas.workers.lab.paths import RUN_ROOT
from lintas.workers.model.generate import generate_fabric

from .conftest import ROOT, TEMPLATE, ip_json, lab_process_pids, make_settings, needs_lab, run

pytestmark = needs_lab


def lab_namespaces() -> list[str]:
    return [e["name"] for e in ip_json("netns", "list") if e["name"].startswith("lx-")]  # type: ignore[union-attr]


def root_lab_links() -> list[str]:
    return [e["ifname"] for e in ip_json("link", "show") if e["ifname"].startswith("lxm")]  # type: ignore[union-attr]


def assert_nothing_left(settings: Settings, pids: dict[int, str] | None = None) -> None:
    assert lab_namespaces() == []
    assert root_lab_links() == []
    assert lab_process_pids() == {}
    for pid in pids or {}:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        assert state == "Z", f"lab process {pid} survived lab down"
    assert not (settings.home / "lab").exists()
    assert not RUN_ROOT.exists()
    sweep = subprocess.run(["pgrep", "-f", str(settings.home)], capture_output=True, text=True)
    assert sweep.stdout.strip() == ""


def test_down_leaves_nothing_behind(lab_settings: Settings) -> None:
    system_dirs = {d: d.exists() for d in (Path("/run/sshd"), Path("/run/frr"), *mount_points())}
    run(lab_up(lab_settings, TEMPLATE))
    pids = lab_process_pids()
    comms = sorted(pids.values())
    assert comms.count("zebra") == 6 and comms.count("sshd") == 8
    for daemon in ("libvirtd", "virtlogd", "ovsdb-server", "ovs-vswitchd"):
        assert comms.count(daemon) == 2, comms
    assert comms.count("qemu-system-x86") == 1  # osc-01's nova domain
    report = run(lab_down(lab_settings))
    assert report.namespaces == 8 and report.processes >= 35
    assert_nothing_left(lab_settings, pids)
    assert {d: d.exists() for d in system_dirs} == system_dirs  # made by the lab only if missing before
    run(lab_down(lab_settings))  # a second down is a no-op


def test_up_twice_is_idempotent_and_repairs(lab_settings: Settings) -> None:
    run(lab_up(lab_settings, TEMPLATE))
    pids = lab_process_pids()
    known_hosts = (lab_settings.home / "lab" / "keys" / "known_hosts").read_text()
    frr_conf = RUN_ROOT / "lx-leaf-02" / "etc" / "frr.conf"
    frr_conf.write_text(frr_conf.read_text() + "! deployed by a test\n")
    t0 = time.monotonic()
    run(lab_up(lab_settings, TEMPLATE))
    assert time.monotonic() - t0 < 5
    assert lab_process_pids() == pids  # nothing restarted
    assert (lab_settings.home / "lab" / "keys" / "known_hosts").read_text() == known_hosts  # same host keys
    assert "deployed by a test" in frr_conf.read_text()  # a deployed config is not reset

    # break things: daemons of a switch and a host, a fabric link, a management veth
    bgpd = int((RUN_ROOT / "lx-leaf-02" / "run" / "bgpd.pid").read_text())
    os.kill(bgpd, signal.SIGKILL)
    for pidfile in ("libvirt-run/libvirtd.pid", "ovs-run/ovs-vswitchd.pid"):
        os.kill(int((RUN_ROOT / "lx-osc-01" / pidfile).read_text()), signal.SIGKILL)
    qemu = {p for p, comm in pids.items() if comm == "qemu-system-x86"}
    subprocess.run(["ip", "-n", "lx-leaf-03", "link", "del", "swp51"], check=True)
    subprocess.run(["ip", "link", "del", "lxm-spine-02"], check=True)
    subprocess.run(["ping", "-c", "1", "-W", "1", "10.255.0.12"], capture_output=True)  # a stale ARP entry
    time.sleep(0.2)
    run(lab_up(lab_settings, TEMPLATE))
    statuses = run(lab_status(lab_settings))
    assert all(s.healthy for s in statuses), [s for s in statuses if not s.healthy]
    assert qemu and {p for p, comm in lab_process_pids().items() if comm == "qemu-system-x86"} == qemu  # kept
    [swp51] = ip_json("-n", "lx-leaf-03", "addr", "show", "dev", "swp51")  # type: ignore[misc]
    assert swp51["mtu"] == 9216 and swp51["addr_info"][0]["local"] == "10.250.16.53"
    ping = subprocess.run(
        ["ip", "netns", "exec", "lx-leaf-03", "ping", "-c", "1", "-W", "2", "10.250.16.52"],
        capture_output=True,
        text=True,
    )
    assert ping.returncode == 0, ping.stdout


def test_down_after_a_crash_mid_up(lab_settings: Settings) -> None:
    """SIGKILL `lab up` half-way (state written, some namespaces and daemons made): down cleans it all."""
    code = (
        "import asyncio, sys; from pathlib import Path; from engine.settings import Settings; "
        "from workers.lab import lab_up; "
        "asyncio.run(lab_up(Settings(home=Path(sys.argv[1])), Path(sys.argv[2])))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(lab_settings.home), str(TEMPLATE)], cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(lab_process_pids()) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lab_namespaces(), "the crash should have left a half-built lab"
    pids = lab_process_pids()
    run(lab_down(lab_settings))
    assert_nothing_left(lab_settings, pids)


def test_down_without_state_sweeps_by_prefix(lab_settings: Settings) -> None:
    subprocess.run(["ip", "netns", "add", "lx-stray"], check=True)
    subprocess.run(
        ["ip", "link", "add", "lxm-stray", "type", "veth", "peer", "name", "eth0", "netns", "lx-stray"], check=True
    )
    sleeper = subprocess.Popen(["ip", "netns", "exec", "lx-stray", "sleep", "300"])
    try:
        report = run(lab_down(lab_settings))
        assert report.namespaces == 1 and report.processes >= 1
        assert sleeper.wait(timeout=10) != 0
        assert lab_namespaces() == [] and root_lab_links() == []
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def test_up_converges_to_another_model(lab_settings: Settings, tmp_path: Path) -> None:
    run(lab_up(lab_settings, TEMPLATE))
    repo = tmp_path / "small"
    for rel, text in generate_fabric(1, n_spines=1, vnis_per_leaf=1).items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    state = run(lab_up(lab_settings, repo))
    assert sorted(state.switches) == ["leaf-01", "spine-01"]
    assert sorted(lab_namespaces()) == ["lx-leaf-01", "lx-spine-01"]
    assert all(s.healthy for s in run(lab_status(lab_settings)))


def test_one_lab_per_machine(lab_settings: Settings, tmp_path: Path) -> None:
    run(lab_up(lab_settings, TEMPLATE))
    other = make_settings(tmp_path / "other-home")
    with pytest.raises(LabError, match=f"LINTAS_HOME={lab_settings.home}"):
        run(lab_up(other, TEMPLATE))


def test_missing_prerequisites_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for prog in (p for p in PROGRAMS if p != "vtysh"):  # everything but vtysh
        target = subprocess.run(["which", prog], capture_output=True, text=True, check=True).stdout.strip()
        (bin_dir / prog).symlink_to(target)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(PrerequisiteError) as exc:
        find_tools()
    assert exc.value.missing == ["`vtysh` not found on PATH (apt-get install frr)"]
    settings = make_settings(tmp_path / "home")
    with pytest.raises(PrerequisiteError, match="vtysh"):
        run(lab_up(settings, TEMPLATE))
    assert not (settings.home / "lab").exists() and lab_namespaces() == []

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PrerequisiteError) as exc:
        find_tools()
    text = str(exc.value)
    for what in ("`ip`", "iproute2", "`sshd`", "openssh-server", "`ping`", "iputils-ping", "`vtysh`"):
        assert what in text
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PrerequisiteError, match="root privileges"):
        find_tools()


def test_lab_traffic_is_not_routed_out_of_the_lab(lab_settings: Settings) -> None:
    """A switch that routes towards the management gateway still cannot reach anything beyond it."""
    routes_before = ip_json("route", "show")
    run(lab_up(lab_settings, TEMPLATE))
    added = [r for r in ip_json("route", "show") if r not in routes_before]  # type: ignore[operator]
    assert [(r["dst"], r["dev"]) for r in added] == [("10.255.0.0/24", "lxmgmt0")]  # no other route
    # "outside": another network attached to the root namespace (lx-/lxm- names: lab down sweeps them)
    sh = ["ip", "netns", "exec"]
    for argv in (
        ["ip", "netns", "add", "lx-outside"],
        ["ip", "link", "add", "lxm-outside", "type", "veth", "peer", "name", "eth0", "netns", "lx-outside"],
        ["ip", "addr", "add", "198.51.100.1/30", "dev", "lxm-outside"],
        ["ip", "link", "set", "lxm-outside", "up"],
        ["ip", "-n", "lx-outside", "addr", "add", "198.51.100.2/30", "dev", "eth0"],
        ["ip", "-n", "lx-outside", "link", "set", "eth0", "up"],
        ["ip", "-n", "lx-outside", "route", "add", "10.255.0.0/24", "via", "198.51.100.1"],
        ["ip", "-n", "lx-leaf-01", "route", "add", "198.51.100.0/30", "via", "10.255.0.1"],
    ):
        subprocess.run(argv, check=True)
    Path("/proc/sys/net/ipv4/conf/lxm-outside/forwarding").write_text("1")

    def ping() -> bool:
        return (
            subprocess.run(
                [*sh, "lx-leaf-01", "ping", "-c", "1", "-W", "1", "198.51.100.2"], capture_output=True
            ).returncode
            == 0
        )

    assert Path("/proc/sys/net/ipv4/conf/lxmgmt0/forwarding").read_text().strip() == "0"
    assert not ping(), "traffic from a lab switch was routed out through the root namespace"
    # control: the same path works once forwarding from the bridge is allowed, so it is what blocks
    Path("/proc/sys/net/ipv4/conf/lxmgmt0/forwarding").write_text("1")
    assert ping()
    run(lab_up(lab_settings, TEMPLATE))  # up restores the safety setting
    assert Path("/proc/sys/net/ipv4/conf/lxmgmt0/forwarding").read_text().strip() == "0"
    assert not ping()
    assert Path("/proc/sys/net/ipv6/conf/lxmgmt0/disable_ipv6").read_text().strip() == "1"
