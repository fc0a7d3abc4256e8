"""`lintas doctor`: finds what is missing, and never sends a packet to an address that is outside
the allow-list or would leave through a gateway."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from lintas.engine.settings import Settings
from lintas.workers.doctor import programs, route_of, target_checks

TEMPLATE = Path(__file__).resolve().parents[2] / "gitops-repo-template"


def _repo_at(tmp_path: Path, subnet_prefix: str) -> Path:
    """The template with every management address moved to ``subnet_prefix``.x (TEST-NET-2)."""
    root = tmp_path / "repo"
    shutil.copytree(TEMPLATE, root)
    for rel in ("fabric/fabric.yaml", "fabric/devices.yaml", "hosts/hosts.yaml", "inventory/hosts.yaml"):
        p = root / rel
        p.write_text(p.read_text().replace("10.255.0.", subnet_prefix + "."))
    return root


def test_addresses_outside_the_allow_list_are_refused_without_a_packet(tmp_path: Path) -> None:
    repo = _repo_at(tmp_path, "198.51.100")
    found = target_checks(repo, Settings(home=tmp_path / "home"), probe=False)
    assert len(found) == 8 and all(not f.ok and "outside the allowed networks" in f.detail for f in found), found


def test_allowed_targets_off_the_lab_bridge_are_not_probed(tmp_path: Path) -> None:
    """Even inside the allow-list, an address the kernel does not route onto the lab's bridge is
    only reported (the machine's own uplink subnet is directly connected too)."""
    repo = _repo_at(tmp_path, "198.51.100")
    settings = Settings(home=tmp_path / "home", deploy={"allowed_networks": ["198.51.100.0/24"]})
    route = route_of("198.51.100.11")  # `ip route get`: asks the kernel, sends nothing
    assert route is None or "lxmgmt0" not in route
    found = target_checks(repo, settings, probe=False)
    assert len(found) == 8
    for f in found:
        assert "answer" not in f.detail, f
        assert ("not probed" in f.detail and f.ok) if route else ("no route" in f.detail and not f.ok)


def test_programs_name_the_package_to_install() -> None:
    by_item = {f.item: f for f in programs()}
    assert by_item["git"].ok and by_item["nats-server"].ok  # nats-server from the venv
    assert all(f.ok or "apt-get install" in f.detail or "pip:" in f.detail for f in by_item.values())


def test_doctor_command_exit_status(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lintas.engine.cli.main", "doctor", "--repo", str(_repo_at(tmp_path, "198.51.100"))],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "LINTAS_HOME": str(tmp_path / "home")},
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "outside the allowed networks" in out.stdout and "problem(s)" in out.stdout
