"""Helpers shared by the rendering tests: repo variants of the template repo as text."""

from __future__ import annotations

import re
from pathlib import Path

from lintas.workers.model import InfraModel, load_model_texts

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "gitops-repo-template"
GOLDEN = Path(__file__).resolve().parent / "golden" / "network"
DUMMY_SECRET = "Dummy-Secret-4-Tests"


def template_texts() -> dict[str, str]:
    return {str(p.relative_to(TEMPLATE)): p.read_text() for p in TEMPLATE.rglob("*.yaml")}


def as_eos(texts: dict[str, str], devices: set[str] | None = None) -> dict[str, str]:
    """The same fabric with ``devices`` (default: all) on EOS, their ports named ``EthernetN``.

    Only whole-fabric conversion renames ports (links and host uplinks name them too).
    """
    out = dict(texts)
    if devices is None:
        for rel in ("fabric/devices.yaml", "fabric/links.yaml", "hosts/hosts.yaml"):
            out[rel] = out[rel].replace("swp", "Ethernet")
        out["fabric/devices.yaml"] = out["fabric/devices.yaml"].replace("platform: frr", "platform: eos")
        return out
    text = out["fabric/devices.yaml"]
    for name in devices:
        text, n = re.subn(rf"(- name: {re.escape(name)}\n(?:    .*\n)*?    platform: )frr", r"\1eos", text)
        assert n == 1, name
    out["fabric/devices.yaml"] = text
    return out


def model_of(texts: dict[str, str]) -> InfraModel:
    return load_model_texts(texts)
