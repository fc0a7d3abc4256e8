"""Render many targets at once, collecting every template error, and decide which
targets a commit affects (incremental rendering)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Literal

from engine.diagnostics import Diagnostic
from workers.model import InfraModel
from workers.model.graph import affected_targets
from workers.render.env import Renderer, RenderError
from workers.render.hosts import render_host
from workers.render.network import render_device

TEMPLATE_PREFIX = "templates/"


def kind_of(model: InfraModel, target: str) -> Literal["device", "host"]:
    return "device" if target in model.devices else "host"


def render_targets(model: InfraModel, names: Iterable[str], renderer: Renderer) -> dict[str, dict[str, str]]:
    """Every artifact of every named target; all template errors reported together."""
    out: dict[str, dict[str, str]] = {}
    errors: list[Diagnostic] = []
    for name in sorted(names):
        try:
            if name in model.devices:
                out[name] = render_device(model, name, renderer)
            elif name in model.hosts:
                out[name] = render_host(model, name, renderer)
        except RenderError as exc:
            errors.extend(exc.diagnostics)
    if errors:
        raise RenderError(errors, summary=f"{len(errors)} template error(s)")
    return out


def select_targets(
    model: InfraModel,
    *,
    old_model: InfraModel | None,
    previous: Collection[str],
    changed_paths: Collection[str] | None,
) -> set[str]:
    """Targets to (re-)render. Everything when there is no previous render to reuse,
    when the change is unknown, or when a template changed (templates may touch any target)."""
    everything = set(model.targets)
    if old_model is None or changed_paths is None:
        return everything
    if any(p.startswith(TEMPLATE_PREFIX) for p in changed_paths):
        return everything
    affected = affected_targets(old_model, model) & everything
    return affected | (everything - set(previous))  # plus targets never rendered before
