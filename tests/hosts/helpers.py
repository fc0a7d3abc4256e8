"""Rendered host bundles of the template (and variants), for the host tests."""

from __future__ import annotations

from pathlib import Path

from workers.model import InfraModel, load_model
from workers.render.env import Renderer
from workers.render.targets import render_targets

TEMPLATE = Path(__file__).resolve().parents[2] / "gitops-repo-template"


def template_model() -> InfraModel:
    return load_model(TEMPLATE)


def bundle(host: str, model: InfraModel | None = None) -> dict[str, str]:
    m = model or template_model()
    return render_targets(m, [host], Renderer(TEMPLATE))[host]
