"""Plain, JSON-ready data from model objects: for policy inputs and render fingerprints.

Dataclasses and pydantic models become dicts with sorted keys, addresses and UUIDs
strings, sets sorted lists. Equal values give equal plain data in every process (no
dependence on hash seeds or dict order), so its JSON can be hashed and compared across
workers and commits.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from pydantic import BaseModel

_STR = (
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
    UUID,
)


def plain(value: Any) -> Any:
    """JSON-ready data: dataclasses and pydantic models as sorted dicts, addresses as strings."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, _STR):
        return str(value)
    if isinstance(value, BaseModel):
        return plain(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name))
            for f in sorted(dataclasses.fields(value), key=lambda f: f.name)
            if f.compare
        }
    if isinstance(value, Mapping):
        return {str(k): plain(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, set | frozenset):
        return sorted(plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    raise TypeError(f"cannot make plain data of {type(value).__name__}")
