"""Fixtures for the FRR driver: rendered candidates of the template, the real lab, drivers.

Lab tests share one lab per module (``lab``), torn down with ``lab_down`` whatever
happened; a missing prerequisite fails them (never a skip). Pure tests use only
``rendered`` and need no lab.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lintas.engine.settings import Settings
from lintas.workers.drivers.frr.driver import FrrDriver
from lintas.workers.lab import PrerequisiteError, find_tools, lab_device_facts, lab_down, lab_up
from lintas.workers.model import load_model
from lintas.workers.model.model import InfraModel
from lintas.workers.render.env import Renderer
from lintas.workers.render.network import render_device

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "gitops-repo-template"
SWITCHES = ["spine-01", "spine-02", "leaf-01", "leaf-02", "leaf-03", "leaf-04"]
PASSWORD_ENV = "FABRIC_BGP_PASSWORD"


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture(scope="session")
def model() -> InfraModel:
    return load_model(TEMPLATE)


@pytest.fixture(scope="session")
def rendered(model: InfraModel) -> dict[str, dict[str, str]]:
    """``{device: {"frr.conf": ..., "linux.json": ...}}``: the template's artifacts, secret tokens included."""
    renderer = Renderer(TEMPLATE)
    return {name: render_device(model, name, renderer) for name in SWITCHES}


def with_extra_vni(bundle: dict[str, str], vni: int = 10999, vlan: int = 999) -> dict[str, str]:
    """A changed candidate: one more L2 VNI (Linux) and one more prefix-list line (FRR)."""
    spec = json.loads(bundle["linux.json"])
    vx = {**next(v for v in spec["vxlans"] if v["kind"] == "l2"), "name": f"vni{vni}", "vni": vni, "vlan": vlan}
    svi = {
        **next(s for s in spec["svis"] if s["kind"] == "l2"),
        "name": f"vlan{vlan}",
        "vlan": vlan,
        "addresses": ["10.99.0.1/24"],
    }
    spec["vxlans"] = sorted(spec["vxlans"] + [vx], key=lambda v: v["vni"])
    spec["svis"] = sorted(spec["svis"] + [svi], key=lambda s: s["vlan"])
    spec["bridge"]["vlans"] = sorted(spec["bridge"]["vlans"] + [vlan])
    frr = bundle["frr.conf"] + "ip prefix-list LINTAS-TEST seq 5 permit 198.51.100.0/24\n"
    return {"frr.conf": frr, "linux.json": json.dumps(spec, indent=2, sort_keys=True) + "\n"}


# -- the lab ------------------------------------------------------------------------------


def _missing() -> str | None:
    try:
        find_tools()
    except PrerequisiteError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def password() -> Iterator[str]:
    """A fresh BGP password for the module, in the environment as the template's reference expects."""
    value = "Lx-" + secrets.token_hex(8)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PASSWORD_ENV, value)
        yield value


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The template's lab (day 0), removed afterwards whatever the tests did."""
    missing = _missing()
    if missing is not None:
        pytest.fail(f"lab prerequisites missing (run scripts/setup.sh): {missing}")
    settings = Settings(home=tmp_path_factory.mktemp("frrlab") / "home")
    try:
        run(lab_up(settings, TEMPLATE))
        yield settings
    finally:
        run(lab_down(settings))


def driver_args(settings: Settings, device: str, **extra: Any) -> dict[str, Any]:
    f = lab_device_facts(settings, device)
    return {
        "hostname": f.mgmt_ip,
        "username": f.username,
        "password": "",
        "optional_args": {"key_file": str(f.key_file), "known_hosts": str(f.known_hosts), "port": f.ssh_port, **extra},
    }


@pytest.fixture(scope="module")
def connect(lab: Settings) -> Iterator[Callable[..., FrrDriver]]:
    """``connect(device, **optional_args)``: an open driver, closed at the end of the module."""
    opened: list[FrrDriver] = []

    def make(device: str, **extra: Any) -> FrrDriver:
        d = FrrDriver(**driver_args(lab, device, **extra))
        d.open()
        opened.append(d)
        return d

    yield make
    for d in opened:
        d.close()
