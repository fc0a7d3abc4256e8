"""Where the data that ships with Lintas lives: the default pipeline, the built-in policy library and
the infra-repo template. Found through ``importlib.resources`` so that a wheel installed anywhere
finds them as a checkout does."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _root() -> Path:
    return Path(str(files("lintas"))).resolve()


def template_dir() -> Path:
    """The ``lintas init`` template (``gitops-repo-template/`` in the repository)."""
    return (_root() / "template").resolve()


def pipelines_dir() -> Path:
    return (_root() / "pipelines").resolve()


def policies_dir() -> Path:
    """The built-in policy library (``policies/`` in the repository)."""
    return (_root() / "policies").resolve()
