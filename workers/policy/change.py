"""The change under evaluation: which targets and which model objects it touches.

The render stage's plan summary (or a full render of both commits, :func:`rendered_change`)
says which targets will change on deploy: the one sound change set. The model diff
(:func:`workers.model.graph.changed_objects`) says which objects changed, and the
dependency graph explains which object affects which target (:func:`attribute`); the
graph never decides which targets change.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lintas.engine.errors import InputError
from lintas.workers.model import InfraModel, affected_by, changed_objects, load_model_texts
from lintas.workers.model.cache import ModelCache
from lintas.workers.model.graph import ObjectKey
from lintas.workers.model.loader import MODEL_FILES
from lintas.workers.model.revision import MAX_MODEL_FILE

Affected = dict[str, set[ObjectKey]]


def model_at_revision(root: Path, rev: str, cache: ModelCache | None = None) -> InfraModel | None:
    """The model at ``rev`` of the git repo at ``root`` (None if absent or invalid there)."""
    import git

    try:
        repo = git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    try:
        tree = repo.commit(rev).tree
        texts: dict[str, bytes] = {}
        for rel in MODEL_FILES:
            try:
                blob = tree / rel
            except KeyError:
                continue
            if blob.type == "blob" and blob.mode != 0o120000 and blob.size <= MAX_MODEL_FILE:
                texts[rel] = blob.data_stream.read()
        return load_model_texts(texts, cache=cache) if texts else None
    except (InputError, ValueError, git.BadName, git.GitCommandError):
        return None
    finally:
        repo.close()


def first_push_summary(model: InfraModel, against: str) -> dict[str, Any]:
    """Nothing before: every target is new (sound without rendering anything)."""
    return {"against": against, "new": sorted(model.targets), "changed": [], "removed": [], "unchanged": 0}


def rendered_change(root: Path, before: str) -> dict[str, Any] | None:
    """The change from ``before`` to the working tree at ``root``, from a full render of both
    (the same computation as `lintas plan --against`): for a pipeline whose policy stage has
    no render stage before it, and for `lintas policy check --against`. None when ``before``
    cannot be rendered (not a git repo, unknown commit, invalid model there)."""
    from lintas.workers.render.local import plan_local

    result = plan_local(root, against=before)
    if result.outcome != "succeeded":
        return None
    return {k: result.summary[k] for k in ("against", "new", "changed", "removed", "unchanged")}


def attribute(affected: Affected, plan_summary: Mapping[str, Any] | None, changed: set[ObjectKey]) -> Affected:
    """Which changed objects explain each target of the plan.

    The plan (a full or fingerprint-sound render) decides *which* targets change; the
    model diff says *what* changed. The dependency graph's attribution is kept where the
    plan agrees, and a plan target it cannot explain (a template reading another object's
    values) is attributed to every changed object: an object's targets are always a subset
    of the plan's, and every target of the plan appears under some object."""
    if plan_summary is None:
        return affected
    planned = {str(t) for k in ("new", "changed", "removed") for t in plan_summary.get(k) or []}
    out: Affected = {t: set(keys) for t, keys in affected.items() if t in planned}
    for target in planned - set(out):
        if changed:
            out[target] = set(changed)
    return out


def change_of(
    model: InfraModel,
    old: InfraModel | None,
    render_summary: Mapping[str, Any] | None,
    *,
    baseline_known: bool,
    against: str,
) -> tuple[Mapping[str, Any] | None, Affected]:
    """(plan summary, affected) for :func:`workers.policy.input.build_input`.

    The targets come only from a render: ``render_summary`` (the render stage's plan, or
    :func:`rendered_change`). With no baseline at all (a first push) every target is new.
    Otherwise the change is unknown (``None``): never guessed from the model diff.
    """
    if render_summary is None and baseline_known and old is None:
        render_summary = first_push_summary(model, against)
    if old is None:
        return render_summary, ({t: {("new-model",)} for t in model.targets} if render_summary is not None else {})
    changed = changed_objects(old, model)
    return render_summary, attribute(affected_by(old, model), render_summary, changed)
