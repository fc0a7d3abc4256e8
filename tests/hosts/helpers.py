"""Rendered host bundles of the template (and variants), for the host tests."""

from __future__ import annotations

from pathlib import Path

from lintas.workers.model import InfraModel, load_model
from lintas.workers.render.env import Renderer
from lintas.workers.render.targets import render_targets

TEMPLATE = Path(__file__).resolve().parents[2] / "gitops-repo-template"


def template_model() -> InfraModel:
    return load_model(TEMPLATE)


def bundle(host: str, model: InfraModel | None = None) -> dict[str, str]:
    m = model or template_model()
    return render_targets(m, [host], Renderer(TEMPLATE))[host]
