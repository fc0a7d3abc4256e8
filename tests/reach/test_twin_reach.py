"""Reaching a twin (issue 18): its login only through its management namespace, the allow-list
before any packet, and a socket made inside a namespace (a real one, on its own loopback)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lintas.engine.settings import Settings
from lintas.workers.lab.frr import DAEMONS
from lintas.workers.lab.paths import LabPaths, twin_paths
from lintas.workers.lab.register import register_lab, register_twin, unregister_twin
from lintas.workers.lab.state import LabState, state_from_plan
from lintas.workers.lab.topology import plan_lab, twin_instance
from lintas.workers.model import load_model
from lintas.workers.reach.allowlist import ConnectError
from lintas.workers.reach.credentials import (
    Target,
    credential_sources,
    find_login,
    registration_file,
    twin_source_name,
    twin_sources,
)
from lintas.workers.reach.netns import connect, open_socket, socket_factory

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "gitops-repo-template"
NEVER = "198.51.100.7"  # must never be contacted: refused before any connection


def registered_twin(
    tmp_path: Path, *, only: frozenset[str] | None = None, hosts: bool | frozenset[str] = False
) -> tuple[Settings, LabPaths, LabState]:
    """A home with the production lab's and twin ``t1``'s (prefix ``lt3f2a``) registrations, written
    as they write them; the twin's paths and state (``only``, ``hosts``: what it holds)."""
    home = tmp_path / "home"
    model = load_model(TEMPLATE)
    paths = LabPaths(home)
    register_lab(paths, state_from_plan(plan_lab(model), paths, TEMPLATE, DAEMONS))
    inst = twin_instance("3f2a")
    tpaths = twin_paths(home, inst)
    state = state_from_plan(plan_lab(model, inst, only=only, hosts=hosts), tpaths, TEMPLATE, DAEMONS)
    register_twin(tpaths, state, "t1")
    return Settings(home=home), tpaths, state


def _homes(tmp_path: Path) -> Settings:
    return registered_twin(tmp_path)[0]


def test_a_twins_login_serves_only_targets_reached_through_its_namespace(tmp_path: Path) -> None:
    settings = _homes(tmp_path)
    twin_leaf = Target("leaf-01", "10.255.0.21", "device", namespace="lt3f2a-mgmt")
    prod_leaf = Target("leaf-01", "10.255.0.21", "device")
    [twin_source] = twin_sources(settings, "t1")
    login = find_login(twin_leaf, [twin_source])
    assert login is not None and login.source == twin_source_name("t1") == "twin-t1"
    assert login.key_file == Path("/run/lintas-twin/lt3f2a/ctl/keys/id_ed25519")
    # the same name and address, but production: the twin's login never serves it ...
    assert find_login(prod_leaf, [twin_source]) is None
    # ... another twin's namespace neither ...
    assert find_login(Target("leaf-01", "10.255.0.21", "device", namespace="lt0000-mgmt"), [twin_source]) is None
    # ... and the default chain (the production lab's source) never serves the twin's target
    assert find_login(twin_leaf, credential_sources(settings)) is None
    lab_login = find_login(prod_leaf, credential_sources(settings))
    assert lab_login is not None and lab_login.source == "lab"
    assert registration_file(settings.home, "twin-t1").exists()
    assert unregister_twin(twin_paths(settings.home, twin_instance("3f2a")), "t1")
    with pytest.raises(ConnectError, match="no twin 't1'"):
        twin_sources(settings, "t1")


def test_the_allow_list_applies_through_a_namespace(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    outside = Target("leaf-01", NEVER, "device", namespace="lt3f2a-mgmt")
    with pytest.raises(ConnectError, match="outside the allowed networks"):
        connect(outside, 22, settings)
    with pytest.raises(ConnectError, match="outside the allowed networks"):
        socket_factory(outside, 22, settings)
    with pytest.raises(ConnectError, match="not an IP address"):
        connect(Target("leaf-01", "leaf-01.example", "device", namespace="lt3f2a-mgmt"), 22, settings)
    with pytest.raises(ConnectError, match="not a network namespace name"):
        open_socket("127.0.0.1", 22, namespace="../../proc/1/ns/net")


SERVER = """
import os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
c.sendall(str(os.stat("/proc/self/ns/net").st_ino).encode())
c.close()
"""


def test_a_socket_made_inside_a_namespace_reaches_only_that_namespace() -> None:
    """A listener on 127.0.0.1 inside a fresh namespace: reached through it, not from here."""
    ns = f"lt{secrets.token_hex(2)}-probe"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
        )
        assert server.stdout is not None
        port = int(server.stdout.readline())
        before = os.stat("/proc/thread-self/ns/net").st_ino
        with pytest.raises(ConnectionRefusedError):  # nothing listens on this port in our namespace
            open_socket("127.0.0.1", port, namespace=None, timeout=2).close()
        with open_socket("127.0.0.1", port, namespace=ns, timeout=5) as sock:
            got = sock.recv(64).decode()
        assert int(got) == os.stat(f"/run/netns/{ns}").st_ino != before
        assert os.stat("/proc/thread-self/ns/net").st_ino == before  # the caller never changed namespace
        with pytest.raises(FileNotFoundError):
            open_socket("127.0.0.1", port, namespace="lt0000-absent", timeout=2)
        server.wait(timeout=5)
    finally:
        if server is not None:
            if server.poll() is None:
                server.kill()
                server.wait()
            if server.stdout is not None:
                server.stdout.close()
        subprocess.run(["ip", "netns", "del", ns], check=False)
        deadline = time.monotonic() + 5
        while Path(f"/run/netns/{ns}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not Path(f"/run/netns/{ns}").exists()


def test_the_frr_driver_connects_only_through_its_socket_factory(tmp_path: Path) -> None:
    """A refused target (the allow-list, in the factory) fails the driver's open: nothing else is tried."""
    from lintas.workers.drivers.frr.driver import FrrDriver
    from lintas.workers.drivers.frr.errors import FrrCandidateError, FrrConnectionError

    kh = tmp_path / "known_hosts"
    kh.write_text("")
    settings = Settings(home=tmp_path / "home")
    target = Target("leaf-01", "10.255.0.21", "device", namespace="lt3f2a-mgmt")
    calls: list[str] = []

    def refused() -> socket.socket:
        calls.append("factory")
        return connect(Target("leaf-01", NEVER, "device", namespace=target.namespace), 22, settings)

    d = FrrDriver(target.address, "root", "", optional_args={"known_hosts": str(kh), "sock_factory": refused})
    with pytest.raises(FrrConnectionError, match="outside the allowed networks"):
        d.open()
    assert calls == ["factory"]
    with pytest.raises(FrrCandidateError, match="sock_factory"):
        FrrDriver(target.address, "root", "", optional_args={"known_hosts": str(kh), "sock_factory": "lt3f2a-mgmt"})
