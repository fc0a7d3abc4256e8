"""Stage discovery through the ``lintas.stages`` entry point group.

The engine only needs the *names* (to reject pipelines that use unknown kinds), so
listing does not import anything. Workers load the classes they serve.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from engine.errors import ConfigError
from engine.stage import StageFactory

GROUP = "lintas.stages"


def _eps() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def stage_kinds() -> list[str]:
    return sorted(_eps())


def load_stage(kind: str) -> StageFactory:
    ep = _eps().get(kind)
    if ep is None:
        raise ConfigError(f"no stage '{kind}' registered (known: {', '.join(stage_kinds()) or 'none'})")
    factory = ep.load()
    if getattr(factory, "kind", None) != kind:
        raise ConfigError(f"entry point {ep.value} declares kind {getattr(factory, 'kind', None)!r}, expected {kind!r}")
    return factory  # type: ignore[no-any-return]
