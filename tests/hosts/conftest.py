"""A real ovsdb-server + ovs-vswitchd (netdev datapath) in a private network namespace.

Not the lab: a namespace named ``ltt-<pid>`` (outside the lab's ``lx-`` prefix, so a
concurrent ``lintas lab down`` leaves it alone), a temporary database, a unix socket.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def _ovs_server(d: Path, ns: str) -> Iterator[str]:
    for tool in ("ovsdb-server", "ovs-vswitchd", "ovsdb-tool", "ovs-vsctl"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run scripts/setup.sh (openvswitch-switch)")
    _run("ip", "netns", "add", ns)
    try:
        _run("ovsdb-tool", "create", str(d / "conf.db"), str(SCHEMA))
        sock = d / "db.sock"
        _run(
            "ip",
            "netns",
            "exec",
            ns,
            "ovsdb-server",
            str(d / "conf.db"),
            f"--remote=punix:{sock}",
            f"--pidfile={d / 'ovsdb.pid'}",
            f"--unixctl={d / 'ovsdb.ctl'}",
            "--detach",
            f"--log-file={d / 'ovsdb.log'}",
        )
        _run("ovs-vsctl", f"--db=unix:{sock}", "--no-wait", "init")
        _run(
            "ip",
            "netns",
            "exec",
            ns,
            "ovs-vswitchd",
            f"unix:{sock}",
            f"--pidfile={d / 'vswitchd.pid'}",
            f"--unixctl={d / 'vswitchd.ctl'}",
            "--detach",
            f"--log-file={d / 'vswitchd.log'}",
        )
        _run("ip", "-n", ns, "link", "add", "ens1f0", "type", "veth", "peer", "name", "peer0")
        yield f"unix:{sock}"
    finally:
        for pid in ("vswitchd.pid", "ovsdb.pid"):
            f = d / pid
            if f.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(f.read_text()), signal.SIGTERM)
        time.sleep(0.2)
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


@pytest.fixture(scope="module")
def ovs_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _ovs_server(tmp_path_factory.mktemp("ovs"), f"ltt-{os.getpid()}") as target:
        yield target


@pytest.fixture(scope="module")
def ovs_target_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second, independent switch (two hosts)."""
    with _ovs_server(tmp_path_factory.mktemp("ovs-b"), f"ltt-{os.getpid()}-b") as target:
        yield target
