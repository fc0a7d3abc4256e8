"""The FRR driver ships on its own: importing ``napalm_frr`` (napalm's lookup module for ``frr``)
loads the driver's modules and ``engine.errors`` (with its diagnostics) and the import-free
``engine.redact``, nothing else of Lintas; napalm's ``get_network_driver("frr")`` finds it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "lintas",
    "lintas.engine",
    "lintas.engine.errors",
    "lintas.engine.diagnostics",
    "lintas.engine.redact",
    "lintas.workers",
    "lintas.workers.drivers",
}


def _fresh(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_napalm_frr_loads_only_the_driver() -> None:
    loaded = _fresh(
        "import json, sys, napalm_frr\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('lintas'))))"
    )
    others = [m for m in loaded if m not in ALLOWED and not m.startswith("lintas.workers.drivers.frr")]
    assert others == []
    assert "lintas.workers.drivers.frr.driver" in loaded


def test_napalm_finds_the_driver_by_name_frr() -> None:
    loaded = _fresh(
        "import json, sys\nfrom napalm import get_network_driver\n"
        "cls = get_network_driver('frr')\n"
        "assert cls.__name__ == 'FrrDriver', cls\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('lintas'))))"
    )
    assert [m for m in loaded if m not in ALLOWED and not m.startswith("lintas.workers.drivers.frr")] == []
