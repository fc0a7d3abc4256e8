"""The changes :func:`workers.hosts.ovsdb.plan` asks of an OVSDB server, as small typed commands.

Each command is one ovsdbapp call (its ``command(api)``), added to the one transaction
:func:`workers.hosts.ovsdb.converge` commits; a :class:`Step` pairs it with the line that
describes it (what the deploy reports as changed). :class:`Keep` changes nothing: it records
why something stays (a managed bridge that still carries someone else's ports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


@dataclass(frozen=True, slots=True)
class AddBridge:
    name: str
    datapath_type: str

    def command(self, api: Any) -> Any:
        return api.add_br(self.name, may_exist=True, datapath_type=self.datapath_type)


@dataclass(frozen=True, slots=True)
class DelBridge:
    name: str

    def command(self, api: Any) -> Any:
        return api.del_br(self.name, True)  # if_exists


@dataclass(frozen=True, slots=True)
class AddPort:
    bridge: str
    port: str

    def command(self, api: Any) -> Any:
        return api.add_port(self.bridge, self.port, may_exist=False)


@dataclass(frozen=True, slots=True)
class DelPort:
    port: str
    bridge: str

    def command(self, api: Any) -> Any:
        return api.del_port(self.port, bridge=self.bridge, if_exists=True)


@dataclass(frozen=True, slots=True)
class SetColumn:
    """``table``'s row ``record`` (``.``: the root row) gets ``column`` = ``value`` (a map: these keys)."""

    table: str
    record: str
    column: str
    value: Any  # ``[]`` clears an optional column

    def command(self, api: Any) -> Any:
        return api.db_set(self.table, self.record, (self.column, self.value))


@dataclass(frozen=True, slots=True)
class RemoveKeys:
    """These keys of map column ``column`` removed (the others stay: written by someone else)."""

    table: str
    record: str
    column: str
    keys: tuple[str, ...]

    def command(self, api: Any) -> Any:
        return api.db_remove(self.table, self.record, self.column, *self.keys)


@dataclass(frozen=True, slots=True)
class Keep:
    """Nothing to do; the step's description says what stays and why."""

    def command(self, api: Any) -> Any:
        raise TypeError("Keep changes nothing: it is never added to a transaction")


Command = AddBridge | DelBridge | AddPort | DelPort | SetColumn | RemoveKeys | Keep


class Step(NamedTuple):
    description: str
    command: Command

    @property
    def changes(self) -> bool:
        return not isinstance(self.command, Keep)
