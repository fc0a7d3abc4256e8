"""Stage discovery through the ``lintas.stages`` entry point group, and background
services (``lintas.services``) that `lintas up` runs.

The engine only needs the *names* (to reject pipelines that use unknown kinds), so
listing does not import anything. Workers load the classes they serve.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Protocol

from lintas.engine.bus import Topology
from lintas.engine.errors import ConfigError
from lintas.engine.settings import Settings
from lintas.engine.stage import StageFactory

GROUP = "lintas.stages"


def _eps() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def stage_kinds() -> list[str]:
    return sorted(_eps())


def confirmations(kinds: Iterable[str]) -> dict[str, str]:
    """Stage kind -> the kind that must follow it to confirm its changes (a stage class's
    ``confirmed_by``; deploy -> verify). Loads the classes of ``kinds``: for workers and the
    validate stage, not for the engine's hot path."""
    eps = _eps()  # one scan of the installed distributions, not one per kind
    out: dict[str, str] = {}
    for kind in kinds:
        ep = eps.get(kind)
        want = getattr(ep.load(), "confirmed_by", None) if ep is not None else None
        if isinstance(want, str):
            out[kind] = want
    return out


def load_stage(kind: str) -> StageFactory:
    ep = _eps().get(kind)
    if ep is None:
        raise ConfigError(f"no stage '{kind}' registered (known: {', '.join(stage_kinds()) or 'none'})")
    factory = ep.load()
    if getattr(factory, "kind", None) != kind:
        raise ConfigError(f"entry point {ep.value} declares kind {getattr(factory, 'kind', None)!r}, expected {kind!r}")
    return factory  # type: ignore[no-any-return]


SERVICES_GROUP = "lintas.services"


class Service(Protocol):
    """A background task `lintas up` runs beside the engine (e.g. the periodic drift scan):
    ``await service(settings, topology)`` runs until cancelled."""

    def __call__(self, settings: Settings, topology: Topology, /) -> Coroutine[object, object, None]: ...


def load_services() -> dict[str, Service]:
    """Every registered service (``lintas.services`` entry points), by name."""
    return {ep.name: ep.load() for ep in sorted(entry_points(group=SERVICES_GROUP), key=lambda e: e.name)}
