"""Models and helpers for the API's part of :class:`engine.settings.Settings`: tokens,
webhook repos, and the files that may extend them.

Secrets never appear here in clear: tokens are SHA-256 hashes, webhook secrets are
references (``env:NAME`` or ``file:/path``) resolved when a request is verified.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator


class Role(IntEnum):
    viewer = 1
    operator = 2
    admin = 3


class TokenEntry(BaseModel):
    """One API token, stored as the hex SHA-256 of the token (never the token itself)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    role: str = Field(pattern="^(viewer|operator|admin)$")
    sha256: str = Field(pattern="^[0-9a-f]{64}$")

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.lower() if isinstance(v, str) else v

    @property
    def level(self) -> Role:
        return Role[self.role]


class WebhookRepo(BaseModel):
    """How one registered repo is recognised in webhook payloads.

    ``url`` (optional) overrides the fetch URL from the repo registry (``repos.json``).
    The fetch URL always comes from here or the registry, never from the payload.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    github: str | None = None  # repository.full_name, e.g. "acme/infra"
    gitea: str | None = None  # repository.full_name
    gitlab: str | None = None  # project.path_with_namespace
    secret_ref: str = Field(pattern=r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")


class ApiSources(Protocol):
    """The part of :class:`engine.settings.Settings` these helpers read (no import of it: the
    settings tree imports the models above, and this module must not import it back)."""

    @property
    def home(self) -> Path: ...
    @property
    def api_tokens(self) -> list[TokenEntry]: ...
    @property
    def api_tokens_file(self) -> Path | None: ...
    @property
    def webhooks(self) -> dict[str, WebhookRepo]: ...
    @property
    def webhooks_file(self) -> Path | None: ...


_tokens = TypeAdapter(list[TokenEntry])
_hooks = TypeAdapter(dict[str, WebhookRepo])


def all_tokens(settings: ApiSources) -> list[TokenEntry]:
    """``LINTAS_API_TOKENS`` plus the entries of ``LINTAS_API_TOKENS_FILE`` (a JSON list)."""
    path = settings.api_tokens_file
    extra = _tokens.validate_json(path.read_bytes()) if path else []
    return [*settings.api_tokens, *extra]


def all_webhooks(settings: ApiSources) -> dict[str, WebhookRepo]:
    """``LINTAS_WEBHOOKS_FILE`` (default: LINTAS_HOME/webhooks.json when it exists), then
    ``LINTAS_WEBHOOKS`` over it. Read per request, so an edited file takes effect at once."""
    path = settings.webhooks_file or settings.home / "webhooks.json"
    from_file = _hooks.validate_json(path.read_bytes()) if path.exists() else {}
    return {**from_file, **settings.webhooks}
