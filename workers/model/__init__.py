"""The infrastructure model: schema, derivation, semantic checks and dependency graph.

Public API::

    from lintas.workers.model import load_model, InfraModel, affected_targets

    model = load_model(Path("checkout"))      # raises engine.errors.ModelError
    model.devices["leaf-01"].asn              # derived or explicit
    affected_targets(old_model, model)        # {"leaf-01", ...}
"""

from __future__ import annotations

from lintas.workers.model.cache import ModelCache
from lintas.workers.model.graph import DependencyGraph, affected_by, affected_targets, changed_objects, model_objects
from lintas.workers.model.loader import MODEL_FILES, build_model, load_model, load_model_texts
from lintas.workers.model.model import Device, Host, InfraModel, Inventory, Link, LinkEnd, Network

__all__ = [
    "MODEL_FILES",
    "DependencyGraph",
    "Device",
    "Host",
    "InfraModel",
    "Inventory",
    "Link",
    "LinkEnd",
    "ModelCache",
    "Network",
    "affected_by",
    "affected_targets",
    "build_model",
    "changed_objects",
    "load_model",
    "load_model_texts",
    "model_objects",
]
