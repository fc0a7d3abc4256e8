"""Schema of ``inventory/``: nornir's SimpleInventory (hosts, groups, defaults).

The files stay loadable by ``nornir.plugins.inventory.SimpleInventory``; the only
restriction Lintas adds is that credentials are references (``env:NAME``,
``file:/path``) resolved at connect time, never secrets in git.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from lintas.workers.model.primitives import Name, SecretRef, Spec


class ConnectionOptions(Spec):
    hostname: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    username: str | None = None
    password: SecretRef | None = None
    platform: str | None = None
    extras: dict[str, Any] | None = None


class InventoryDefaults(Spec):
    hostname: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    username: str | None = None
    password: SecretRef | None = None
    platform: str | None = None
    data: dict[str, Any] = {}
    connection_options: dict[Name, ConnectionOptions] = {}


class InventoryGroup(InventoryDefaults):
    groups: list[Name] = []


class InventoryHost(InventoryGroup):
    pass
