"""API settings (``LINTAS_*``): tokens, anonymous read, webhook repos and limits.

To be merged into :class:`engine.settings.Settings`; kept here while issue 7 is built.
Secrets never appear here in clear: tokens are SHA-256 hashes, webhook secrets are
references (``env:NAME`` or ``file:/path``) resolved when a request is verified.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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


_tokens = TypeAdapter(list[TokenEntry])
_hooks = TypeAdapter(dict[str, WebhookRepo])


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LINTAS_", env_nested_delimiter="__", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".lintas")
    api_tokens: list[TokenEntry] = Field(default_factory=list)
    api_tokens_file: Path | None = None
    api_anonymous_read: bool = False
    webhooks: dict[str, WebhookRepo] = Field(default_factory=dict)
    webhooks_file: Path | None = None  # default: LINTAS_HOME/webhooks.json when it exists
    webhook_dedup_ttl_s: float = 7 * 24 * 3600
    webhook_max_body_bytes: int = 5 * 1024 * 1024

    def all_tokens(self) -> list[TokenEntry]:
        extra = _tokens.validate_json(self.api_tokens_file.read_bytes()) if self.api_tokens_file else []
        return [*self.api_tokens, *extra]

    def all_webhooks(self) -> dict[str, WebhookRepo]:
        path = self.webhooks_file or self.home / "webhooks.json"
        from_file = _hooks.validate_json(path.read_bytes()) if path.exists() else {}
        return {**from_file, **self.webhooks}
