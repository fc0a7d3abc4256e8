"""Network safety: no file of the project names the subnet of this machine's uplink.

The uplink of the machines Lintas is built and tested on is in TEST-NET-1 (RFC 5737's first
documentation /24), the subnet :data:`UPLINK` starts. A
test or template that names an address there, even only in a prefix-list, is one edit away
from a connection out of the lab. Tests that need an address outside the lab use
198.51.100.0/24, and only to check that it is refused or as inert configuration text.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("engine", "workers", "tests", "bench", "policies", "pipelines", "gitops-repo-template", ".ci", "scripts")
SUFFIXES = {".py", ".yaml", ".yml", ".json", ".j2", ".rego", ".sh", ".toml", ".cfg", ".conf", ""}
UPLINK = "192.0." + "2."  # split so this file does not name it either


def _files() -> list[Path]:
    out = []
    for top in SCANNED:
        base = ROOT / top
        if not base.exists():
            continue
        for p in base.rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix in SUFFIXES:
                out.append(p)
    return out + [ROOT / "README.md", ROOT / "pyproject.toml"]


def test_the_scan_sees_the_project() -> None:
    files = _files()
    assert len(files) > 200
    assert ROOT / "tests" / "security" / "test_no_uplink_addresses.py" in files


def test_no_file_names_the_uplink_subnet() -> None:
    hits = []
    for p in _files():
        text = p.read_bytes().decode("utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            if UPLINK in line:
                hits.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert hits == [], "addresses of the uplink subnet (use 198.51.100.0/24):\n" + "\n".join(hits)
