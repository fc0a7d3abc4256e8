"""Server-side registry of infra repos: name -> URL Lintas fetches from.

Sources: ``LINTAS_HOME/repos.json`` (written by `lintas init`). A URL taken only from an
untrusted payload (a webhook) is never fetched; it must match an entry here.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, TypeAdapter


class RepoEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    url: str
    default_ref: str = "refs/heads/main"


_adapter = TypeAdapter(dict[str, RepoEntry])


class RepoRegistry:
    def __init__(self, home: Path) -> None:
        self.path = home / "repos.json"

    def load(self) -> dict[str, RepoEntry]:
        if not self.path.exists():
            return {}
        return _adapter.validate_json(self.path.read_bytes())

    def get(self, name: str) -> RepoEntry | None:
        return self.load().get(name)

    def add(self, entry: RepoEntry) -> None:
        repos = self.load()
        repos[entry.name] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v.model_dump() for k, v in repos.items()}, indent=2))
        tmp.replace(self.path)
