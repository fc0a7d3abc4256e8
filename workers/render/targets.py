"""Render many targets at once, collecting every template error, and decide which targets
must be rendered again (incremental rendering by input fingerprints, see :mod:`workers.render.inputs`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from lintas.engine.diagnostics import Diagnostic
from lintas.workers.model import InfraModel
from lintas.workers.render.env import Renderer, RenderError
from lintas.workers.render.hosts import HostRenderOptions, host_input
from lintas.workers.render.inputs import TargetInput, fingerprint
from lintas.workers.render.network import device_input

TEMPLATE_PREFIX = "templates/"


def kind_of(model: InfraModel, target: str) -> Literal["device", "host"]:
    return "device" if target in model.devices else "host"


def prepare_targets(
    model: InfraModel, names: Iterable[str], options: HostRenderOptions | None = None
) -> dict[str, TargetInput]:
    """The input projection of every named target (unknown names are skipped)."""
    out: dict[str, TargetInput] = {}
    errors: list[Diagnostic] = []
    for name in sorted(names):
        try:
            if name in model.devices:
                out[name] = device_input(model, name)
            elif name in model.hosts:
                out[name] = host_input(model, name, options)
        except RenderError as exc:
            errors.extend(exc.diagnostics)
    if errors:
        raise RenderError(errors, summary=f"{len(errors)} template error(s)")
    return out


def render_inputs(inputs: Mapping[str, TargetInput], renderer: Renderer) -> dict[str, dict[str, str]]:
    """Every artifact of every input; all template errors reported together."""
    ordered = [inputs[n] for n in sorted(inputs)]
    texts = renderer.render_many([c for inp in ordered for c in inp.calls])
    out: dict[str, dict[str, str]] = {}
    errors: list[Diagnostic] = []
    at = 0
    for inp in ordered:
        mine, at = texts[at : at + len(inp.calls)], at + len(inp.calls)
        try:
            out[inp.target] = inp.finish(inp, mine)
        except RenderError as exc:
            errors.extend(exc.diagnostics)
    if errors:
        raise RenderError(errors, summary=f"{len(errors)} template error(s)")
    return out


def render_targets(
    model: InfraModel, names: Iterable[str], renderer: Renderer, options: HostRenderOptions | None = None
) -> dict[str, dict[str, str]]:
    """Every artifact of every named target; all template errors reported together."""
    return render_inputs(prepare_targets(model, names, options), renderer)


@dataclass
class Selection:
    """Which targets to render, and the fingerprint of every target of the model."""

    fingerprints: dict[str, str]
    render: set[str]
    reuse: set[str] = field(default_factory=set)
    inputs: dict[str, TargetInput] = field(default_factory=dict)


def select_targets(
    model: InfraModel,
    renderer: Renderer,
    *,
    previous: Mapping[str, str] | None,
    reusable: Iterable[str] = (),
    options: HostRenderOptions | None = None,
) -> Selection:
    """Targets whose input fingerprint differs from ``previous`` (target -> fingerprint of the
    previous commit's render), or that have no previous artifacts (``reusable``), must render.
    Everything else is byte-identical to the previous render and reused.

    Sound by construction: the fingerprint covers everything the artifacts are made of
    (the target's model projection, the repo's templates, the renderer's code)."""
    inputs = prepare_targets(model, model.targets, options)
    digest = renderer.digest()
    prints = {name: fingerprint(inp, digest) for name, inp in inputs.items()}
    have = set(reusable)
    before = previous or {}
    render = {t for t, fp in prints.items() if t not in have or before.get(t) != fp}
    return Selection(fingerprints=prints, render=render, reuse=set(prints) - render, inputs=inputs)
