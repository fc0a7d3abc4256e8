"""Lab fixtures: a real lab (namespaces, FRR, libvirt, OVS, sshd) under a temporary LINTAS_HOME.

The lab is machine-wide (one per machine), so every fixture tears it down with
``lab_down`` in its finalizer, whatever the test did. Tests that only look at the lab
share one per module (``lab``); tests that break or rebuild it make their own.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lintas.engine.settings import Settings
from lintas.workers.lab import LabState, PrerequisiteError, find_tools, lab_down, lab_up

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "gitops-repo-template"


def _missing() -> str | None:
    try:
        find_tools()
    except PrerequisiteError as exc:
        return str(exc)
    return None


MISSING = _missing()
needs_lab = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def _prerequisites() -> None:
    """scripts/setup.sh installs everything the lab needs: a gap is a failure, never a skip."""
    if MISSING is not None:
        pytest.fail(f"lab prerequisites missing (run scripts/setup.sh): {MISSING}")


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def make_settings(home: Path) -> Settings:
    return Settings(home=home)


@pytest.fixture
def lab_settings(tmp_path: Path) -> Iterator[Settings]:
    """A fresh LINTAS_HOME; the lab (if any was built) is removed afterwards."""
    settings = make_settings(tmp_path / "home")
    try:
        yield settings
    finally:
        run(lab_down(settings))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, LabState]]:
    """The template's lab, shared by a module's read-only tests."""
    if MISSING is not None:
        pytest.fail(f"lab prerequisites missing (run scripts/setup.sh): {MISSING}")
    settings = make_settings(tmp_path_factory.mktemp("lab") / "home")
    try:
        state = run(lab_up(settings, TEMPLATE))
        yield settings, state
    finally:
        run(lab_down(settings))


def ip_json(*args: str) -> object:
    import json
    import subprocess

    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


LAB_COMMS = (
    "zebra",
    "bgpd",
    "bfdd",
    "staticd",
    "sshd",
    "libvirtd",
    "virtlogd",
    "ovsdb-server",
    "ovs-vswitchd",
    "qemu-system-x86",
)


def lab_process_pids() -> dict[int, str]:
    """Live (non-zombie) FRR, sshd, libvirt, OVS and QEMU processes outside the root network namespace
    (and outside named namespaces that are not the lab's: other tools may run OVS or libvirt there)."""
    root_ns = os.stat("/proc/self/ns/net").st_ino
    others = set()
    for ns in Path("/run/netns").glob("*") if Path("/run/netns").is_dir() else []:
        if not ns.name.startswith("lx-"):
            try:
                others.add(ns.stat().st_ino)
            except OSError:
                continue
    out: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            comm = (d / "comm").read_text().strip()
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if comm in LAB_COMMS and state != "Z" and (os.stat(d / "ns" / "net").st_ino not in others | {root_ns}):
                out[int(d.name)] = comm
        except (OSError, IndexError):
            continue
    return out
