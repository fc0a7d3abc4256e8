"""Where policy modules and policy data come from.

- **Built-in library**: ``policies/*.rego`` shipped with Lintas (packages ``lintas.builtin.*``),
  their defaults ``policies/data.json`` and fixtures ``policies/fixtures/<id>/{pass,fail}.json``.
- **Repo-local policies**: ``policies/**/*.rego`` of the infra repo, read through
  :class:`~engine.repofs.RepoFS` (no symlink leaves the repo). They add to the built-ins and
  can neither replace nor extend them: the packages ``lintas``, ``lintas.builtin.*``,
  ``lintas.config.*`` and ``lintas.decision.*`` are reserved, and so are built-ins that
  reach the network or the server's environment (see ``FORBIDDEN_BUILTINS``).
- **Data** (``data.lintas.config``): the built-in defaults, deep-merged with the operator's
  file (``LINTAS_POLICY_DATA``, JSON or YAML). A repo cannot change it: otherwise a
  commit could lift its own freeze window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

from lintas.engine import resources
from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import ConfigError
from lintas.engine.repofs import RepoFS
from lintas.workers.policy.errors import PolicySyntaxError
from lintas.workers.policy.rego_source import FORBIDDEN_BUILTINS, inspect

BUILTIN_DIR = resources.policies_dir()
BUILTIN_PREFIX = "builtin/"
REPO_GLOB = "policies/**/*.rego"
RESERVED = ("lintas.builtin", "lintas.config", "lintas.decision")
MAX_REPO_MODULES = 500
MAX_MODULE_BYTES = 512 * 1024


def builtin_modules(directory: Path = BUILTIN_DIR, *, tests: bool = True) -> dict[str, str]:
    """``{"builtin/<file>": source}`` of the built-in library."""
    if not directory.is_dir():
        raise ConfigError(f"built-in policy library not found at {directory}")
    return {
        BUILTIN_PREFIX + p.name: p.read_text(encoding="utf-8")
        for p in sorted(directory.glob("*.rego"))
        if tests or not p.name.endswith("_test.rego")
    }


def builtin_data(directory: Path = BUILTIN_DIR) -> dict[str, Any]:
    path = directory / "data.json"
    loaded = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: policy data must be a JSON object")
    return loaded


def operator_data(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read policy data {path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: policy data must be a mapping (blast_radius, freeze, vlans, ...)")
    return loaded


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in ``over`` replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def data_document(config: Mapping[str, Any]) -> dict[str, Any]:
    return {"lintas": {"config": dict(config)}}


def repo_modules(root: Path) -> dict[str, str]:
    """``{"policies/...rego": source}`` of the infra repo, checked (see module docstring)."""
    fs = RepoFS(root, max_file_bytes=MAX_MODULE_BYTES)
    files = sorted(fs.glob(REPO_GLOB))
    if len(files) > MAX_REPO_MODULES:
        raise PolicySyntaxError(
            [Diagnostic(file="policies/", message=f"{len(files)} policy files; at most {MAX_REPO_MODULES} are allowed")]
        )
    modules = {rel: fs.read_text(rel) for rel in files}
    check_repo_modules(modules)
    return modules


def reserved(package: str) -> bool:
    return package == "lintas" or any(package == r or package.startswith(r + ".") for r in RESERVED)


def check_repo_modules(modules: Mapping[str, str]) -> None:
    diags: list[Diagnostic] = []
    for name, source in sorted(modules.items()):
        info = inspect(name, source)
        if info.package is None:
            diags.append(Diagnostic(file=name, line=1, message="no package declaration (e.g. `package lintas.local`)"))
        elif reserved(info.package):
            diags.append(
                Diagnostic(
                    file=name,
                    line=info.package_line,
                    message=(f"package {info.package} is reserved for Lintas; use one of your own, e.g. lintas.local"),
                )
            )
        for builtin, line, col in info.forbidden:
            diags.append(
                Diagnostic(
                    file=name,
                    line=line,
                    column=col,
                    message=(
                        f"built-in {builtin} is not allowed in repository policies: {FORBIDDEN_BUILTINS[builtin]}"
                    ),
                )
            )
    if diags:
        raise PolicySyntaxError(diags, f"{len(diags)} problem(s) in repository policies")


def fixtures(directory: Path = BUILTIN_DIR) -> dict[str, dict[str, dict[str, Any]]]:
    """``{policy id: {"pass": fixture, "fail": fixture}}``; a fixture is
    ``{"input": ..., "data": {...}?, "expect": {"deny": n, ...}?}``."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for d in sorted((directory / "fixtures").iterdir()) if (directory / "fixtures").is_dir() else []:
        if d.is_dir():
            out[d.name] = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(d.glob("*.json"))}
    return out
