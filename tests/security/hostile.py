"""Hostile repo contents used by the suite and by ``bench/hostile.py``.

Each builder takes a copy of the template repo (a directory) and makes it hostile.
Everything is generated here: no attack file is checked in.
"""

from __future__ import annotations

from pathlib import Path

MILLION = 999_000  # items: a 2 MB flow list that passes the size (5 MiB) and node (1M) limits


def million_invalid_items(repo: Path, n: int = MILLION) -> str:
    """``fabric/devices.yaml`` as one list of ``n`` invalid items (``0`` is not a device)."""
    (repo / "fabric" / "devices.yaml").write_text("devices: [" + ",".join(["0"] * n) + "]\n")
    return "fabric/devices.yaml"


TEMPLATE_ATTACKS = {
    # name: template text (repo override of the FRR config template)
    "format-width": "{{ '{:>999999999}'.format(1) }}\n",
    "nested-loops-silent": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}\n",
    "nested-loops-output": "{% for i in range(99999) %}{% for j in range(99999) %}xxxxxxxx{% endfor %}{% endfor %}\n",
    "recursive-macro": "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}\n",
}
TEMPLATE_FILE = "templates/frr/frr.conf.j2"


def template_attack(repo: Path, name: str) -> str:
    path = repo / TEMPLATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TEMPLATE_ATTACKS[name])
    return TEMPLATE_FILE
