"""The change under evaluation: which targets and which model objects it touches.

The render stage's plan summary says which targets will change on deploy. The model
diff (:func:`workers.model.graph.affected_by`) says which objects changed and why each
target is affected. Without a render stage the plan summary is derived from that diff.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.errors import InputError
from workers.model import InfraModel, affected_by, load_model_texts
from workers.model.cache import ModelCache
from workers.model.graph import ObjectKey
from workers.model.loader import MODEL_FILES
from workers.model.revision import MAX_MODEL_FILE

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


def derived_summary(model: InfraModel, old: InfraModel | None, affected: Affected, against: str) -> dict[str, Any]:
    """A plan summary (render's shape) from the model diff alone."""
    now, before = set(model.targets), set(old.targets) if old is not None else set()
    touched = set(affected)
    return {
        "against": against,
        "new": sorted(t for t in touched if t in now and t not in before),
        "changed": sorted(t for t in touched if t in now and t in before),
        "removed": sorted(t for t in touched if t not in now),
        "unchanged": len(now - touched),
    }


def change_of(
    model: InfraModel, old: InfraModel | None, render_summary: Mapping[str, Any] | None, *, baseline_known: bool,
    against: str,
) -> tuple[Mapping[str, Any] | None, Affected]:
    """(plan summary, affected) for :func:`workers.policy.input.build_input`.

    ``baseline_known`` is False when there is nothing to compare with (a local check without
    ``--against``): the change is then unknown, unless the render stage said what it is.
    """
    affected: Affected = affected_by(old, model) if (old is not None or baseline_known) else {}
    if render_summary is not None:
        return render_summary, affected
    if not baseline_known:
        return None, affected
    return derived_summary(model, old, affected, against), affected
