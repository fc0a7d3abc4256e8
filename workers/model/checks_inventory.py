"""Checks of the nornir inventory against the model: names, groups, addresses, secrets."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from lintas.workers.model.draft import Draft
from lintas.workers.model.primitives import SECRET_REF
from lintas.workers.model.source import Origin, PathPart

_SECRET_KEY = re.compile(r"pass(word|phrase)?|secret|token|api_?key|private_?key|community", re.IGNORECASE)


def check_inventory(draft: Draft) -> None:
    groups = draft.inventory_groups
    for name, entry in draft.inventory_hosts.items():
        origin = draft.origin("inventory-host", name)
        device, host = draft.devices.get(name), draft.hosts.get(name)
        if device is None and host is None:
            if not (draft.is_broken("device", name) or draft.is_broken("host", name)):
                draft.report.add(origin, f"inventory host '{name}' is not a device or host of the model")
        else:
            mgmt = (device or host).mgmt_ip.ip  # type: ignore[union-attr]
            if entry.hostname is not None and _is_ip(entry.hostname) and ipaddress.ip_address(entry.hostname) != mgmt:
                draft.report.add(
                    origin,
                    f"inventory hostname {entry.hostname} differs from the management IP {mgmt} of '{name}'",
                    "hostname",
                )
        _check_groups(draft, origin, entry.groups, groups)
        _check_inline_secrets(draft, origin, entry.model_dump(exclude_none=True))
    for name, group in groups.items():
        origin = draft.origin("inventory-group", name)
        _check_groups(draft, origin, group.groups, groups)
        _check_inline_secrets(draft, origin, group.model_dump(exclude_none=True))
    if (defaults := draft.origins.get(("inventory-defaults", ""))) is not None:
        _check_inline_secrets(draft, defaults, draft.inventory_defaults.model_dump(exclude_none=True))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_groups(draft: Draft, origin: Origin, listed: list[str], groups: dict[str, Any]) -> None:
    for index, group in enumerate(listed):
        if group not in groups and not draft.is_broken("inventory-group", group):
            draft.report.add(origin, f"unknown group '{group}'", "groups", index)


def _check_inline_secrets(draft: Draft, origin: Origin, data: Any, path: tuple[PathPart, ...] = ()) -> None:
    """Free-form ``data`` and ``extras`` must not carry secrets either."""
    if isinstance(data, dict):
        for key, value in data.items():
            here = (*path, key)
            if isinstance(value, str) and _SECRET_KEY.search(str(key)) and not SECRET_REF.fullmatch(value):
                draft.report.add(
                    origin,
                    f"inline secret in '{'.'.join(map(str, here))}': use a reference like env:NAME or file:/path",
                    *here,
                )
            else:
                _check_inline_secrets(draft, origin, value, here)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            _check_inline_secrets(draft, origin, value, (*path, index))
