"""The model of one commit, read from the git mirror (no work tree): the previous commit of an
incremental render, the commit a deploy applies, the last-known-good a rollback verifies."""

from __future__ import annotations

from lintas.engine.gitrepo import MirrorCache
from lintas.workers.model.cache import ModelCache
from lintas.workers.model.loader import MODEL_FILES, load_model_texts
from lintas.workers.model.model import InfraModel

MAX_MODEL_FILE = 5 * 1024 * 1024


def model_texts_at(mirror: MirrorCache, url: str, sha: str) -> dict[str, bytes]:
    """``{relative path: content}`` of every model file present at ``sha`` (blocking: git reads)."""
    texts = {}
    for rel in MODEL_FILES:
        blob = mirror.read_blob(url, sha, rel, MAX_MODEL_FILE)
        if blob is not None:
            texts[rel] = blob
    return texts


def load_model_at(mirror: MirrorCache, url: str, sha: str, *, cache: ModelCache | None = None) -> InfraModel:
    """The validated model of ``sha``; raises :class:`~engine.errors.InputError` when invalid."""
    return load_model_texts(model_texts_at(mirror, url, sha), cache=cache)
