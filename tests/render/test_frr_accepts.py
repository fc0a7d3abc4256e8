"""FRR itself accepts every rendered frr.conf (no daemons started).

Two independent checks per config, after substituting a dummy secret:

* ``vtysh --dryrun`` (``-C -f FILE``) parses every line against FRR 8.4's real
  command grammar, node by node, and prints ``line N: % ...`` for each it refuses;
* ``frr-reload.py --test --input EMPTY FILE`` marks the file into contexts with
  ``vtysh -m`` and diffs it against an empty running config, as a reload would.

Either failing, or printing an error marker even with exit code 0, fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lintas.workers.drivers.frr.secret_tokens import resolve_secrets
from lintas.workers.model import InfraModel, load_model
from lintas.workers.model.generate import generate_fabric
from lintas.workers.render.env import Renderer
from lintas.workers.render.network import render_device

from . import DUMMY_SECRET, TEMPLATE, as_eos, model_of, template_texts

VTYSH = shutil.which("vtysh") or "/usr/bin/vtysh"
FRR_RELOAD = Path("/usr/lib/frr/frr-reload.py")
ERROR_MARKERS = ("% ", "Unknown command", "ERROR", "Traceback", "failed", "Error")

pytestmark = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def _frr_installed() -> None:
    """FRR itself judges the rendered configs: without it these tests fail, never skip."""
    if not Path(VTYSH).exists() or not FRR_RELOAD.exists():
        pytest.fail("FRR (vtysh, frr-reload.py) not installed: run scripts/setup.sh")


def _models() -> dict[str, InfraModel]:
    return {
        "template": load_model(TEMPLATE),
        "mixed": model_of(as_eos(template_texts(), {"leaf-01", "spine-02"})),
        "generated": model_of(generate_fabric(6, vnis_per_leaf=5, n_hosts=4)),
    }


def _configs() -> list[tuple[str, str]]:
    out = []
    renderer = Renderer(None)
    for variant, model in _models().items():
        for name in sorted(model.devices):
            if model.devices[name].platform == "frr":
                conf = render_device(model, name, renderer)["frr.conf"]
                out.append((f"{variant}/{name}", resolve_secrets(conf, lambda ref: DUMMY_SECRET)))
    return out


CONFIGS = _configs()


@pytest.fixture(scope="module")
def confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("frr")
    (path / "vtysh.conf").write_text("")
    (path / "empty.conf").write_text("")
    return path


def _run(args: list[str]) -> tuple[int, str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def _write(confdir: Path, case: str, text: str) -> Path:
    path = confdir / (case.replace("/", "_") + ".conf")
    path.write_text(text)
    return path


@pytest.mark.parametrize(("case", "text"), CONFIGS, ids=[c for c, _ in CONFIGS])
def test_vtysh_dryrun_accepts(confdir: Path, case: str, text: str) -> None:
    path = _write(confdir, case, text)
    rc, out = _run([VTYSH, "--config_dir", str(confdir), "-C", "-f", str(path)])
    assert rc == 0 and not any(m in out for m in ERROR_MARKERS), f"FRR refused {case}:\n{out}"


@pytest.mark.parametrize(("case", "text"), CONFIGS, ids=[c for c, _ in CONFIGS])
def test_frr_reload_parses(confdir: Path, case: str, text: str) -> None:
    path = _write(confdir, case, text)
    rc, out = _run(
        [
            "python3",
            str(FRR_RELOAD),
            "--test",
            "--stdout",
            "--bindir",
            str(Path(VTYSH).parent),
            "--confdir",
            str(confdir),
            "--rundir",
            str(confdir),
            "--input",
            str(confdir / "empty.conf"),
            str(path),
        ]
    )
    assert rc == 0 and "vtysh failed" not in out and " ERROR" not in out, f"frr-reload refused {case}:\n{out}"
    added = out.split("Lines To Add", 1)[-1]
    assert f"hostname {case.split('/')[1]}" in added and "router bgp " in added


def test_checker_catches_a_bad_line(confdir: Path) -> None:
    """The check above can fail: one line FRR 8.4 does not know under l2vpn evpn."""
    case, text = CONFIGS[0]
    bad = text.replace(" address-family l2vpn evpn\n", " address-family l2vpn evpn\n  bgp retain route-target all\n", 1)
    path = _write(confdir, "bad", bad)
    rc, out = _run([VTYSH, "--config_dir", str(confdir), "-C", "-f", str(path)])
    assert rc != 0 and "Unknown command" in out
