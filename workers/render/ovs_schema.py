"""``ovs.json``: the desired Open vSwitch / OVN chassis state of one host.

The shape follows the OVSDB ``Open_vSwitch`` schema so that a deployer can apply
it table by table through the OVSDB protocol (ovsdbapp), and a verifier can read
the same columns back:

- ``open_vswitch``: the root row's ``external_ids`` (OVN chassis settings:
  ``system-id``, ``ovn-bridge``, ``ovn-encap-type``, ``ovn-encap-ip``,
  ``ovn-remote``, ``ovn-bridge-mappings``) and ``other_config``;
- ``bridges``: ``Bridge`` rows (``name``, ``datapath_type``, ``fail_mode``,
  ``other_config``, ``external_ids``), each with its ``Port`` rows (``tag``,
  ``trunks``, ``external_ids``), each with its ``Interface`` rows (``type``,
  ``options``, ``mtu_request``, ``external_ids``). The bridge's own internal
  port is listed explicitly: over OVSDB it is a row like any other.
- ``ip_addresses``: NOT an OVSDB table. Addresses that Linux puts on an OVS
  internal interface after it exists (the tunnel endpoint lives on the uplink
  bridge, as OVS userspace tunnelling requires with ``datapath_type=netdev``).

Ownership: every bridge, port and interface listed here carries
``external_ids:lintas-managed=true``. Rows without it belong to someone else
(tap ports that libvirt/os-vif create, ``ovn-*`` tunnels and patch ports that
ovn-controller creates) and must be neither removed nor reported as drift.
A Lintas-managed row that is no longer listed here is to be removed.

Values of OVSDB string maps are strings (``"true"``, ``"flow"``), as in the
database. ``type: system`` is written explicitly; OVSDB reports it as ``""``,
which :func:`interface_type` maps back.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

MANAGED_KEY = "lintas-managed"
MANAGED = {MANAGED_KEY: "true"}

# IFNAMSIZ - 1: system and internal interfaces are kernel (or netdev) devices.
IfName = Annotated[str, StringConstraints(min_length=1, max_length=15, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
StrMap = dict[
    Annotated[str, StringConstraints(min_length=1, max_length=256)], Annotated[str, StringConstraints(max_length=4096)]
]
InterfaceType = Literal["system", "internal", "geneve", "vxlan", "patch"]
TUNNEL_TYPES = frozenset({"geneve", "vxlan"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Interface(_Strict):
    name: IfName
    type: InterfaceType = "system"
    options: StrMap = {}
    mtu_request: Annotated[int, Field(ge=68, le=65535)] | None = None
    external_ids: StrMap = {}

    @model_validator(mode="after")
    def _options_fit_type(self) -> Interface:
        if self.type in TUNNEL_TYPES:
            remote = self.options.get("remote_ip")
            if remote is None:
                raise ValueError(f"{self.type} interface {self.name} needs options:remote_ip")
            if remote != "flow":
                ipaddress.ip_address(remote)
            key = self.options.get("key", "0")
            if key != "flow" and not (key.isdigit() and int(key) < 2**24):
                raise ValueError(f"interface {self.name}: options:key must be 'flow' or a 24-bit number, not {key!r}")
            if self.options.get("csum", "false") not in ("true", "false"):
                raise ValueError(f"interface {self.name}: options:csum must be 'true' or 'false'")
        elif self.type == "patch":
            if not self.options.get("peer"):
                raise ValueError(f"patch interface {self.name} needs options:peer")
        elif self.options:
            raise ValueError(f"{self.type} interface {self.name} takes no options, got {sorted(self.options)}")
        return self


class Port(_Strict):
    name: IfName
    tag: Annotated[int, Field(ge=0, le=4095)] | None = None
    trunks: list[Annotated[int, Field(ge=0, le=4095)]] = []
    external_ids: StrMap = {}
    interfaces: Annotated[list[Interface], Field(min_length=1)]


class Bridge(_Strict):
    name: IfName
    datapath_type: Literal["system", "netdev"] = "system"
    fail_mode: Literal["secure", "standalone"] | None = None
    other_config: StrMap = {}
    external_ids: StrMap = {}
    ports: list[Port] = []

    @model_validator(mode="after")
    def _has_local_port(self) -> Bridge:
        local = next((p for p in self.ports if p.name == self.name), None)
        if local is None or local.interfaces[0].type != "internal":
            raise ValueError(f"bridge {self.name} must list its local internal port {self.name}")
        return self


class OpenVswitch(_Strict):
    """The single root row of the ``Open_vSwitch`` table (only the keys Lintas sets)."""

    external_ids: StrMap = {}
    other_config: StrMap = {}


class IpAddress(_Strict):
    interface: IfName
    address: str

    @model_validator(mode="after")
    def _is_interface(self) -> IpAddress:
        ipaddress.ip_interface(self.address)
        return self


class OvsSpec(_Strict):
    schema_version: Literal[1] = 1
    host: str
    connection: str
    open_vswitch: OpenVswitch = OpenVswitch()
    bridges: list[Bridge] = []
    ip_addresses: list[IpAddress] = []

    @model_validator(mode="after")
    def _unique_and_consistent(self) -> OvsSpec:
        seen: dict[str, str] = {}
        bridges = {b.name for b in self.bridges}
        if len(bridges) != len(self.bridges):
            raise ValueError("duplicate bridge names")
        for bridge in self.bridges:
            for port in bridge.ports:
                for name in {port.name, *(i.name for i in port.interfaces)}:
                    if name in seen and seen[name] != bridge.name + "/" + port.name:
                        raise ValueError(f"port/interface name {name} is used twice ({seen[name]})")
                    seen[name] = bridge.name + "/" + port.name
        for addr in self.ip_addresses:
            if addr.interface not in seen:
                raise ValueError(f"address {addr.address} is on {addr.interface}, which no bridge has")
        return self

    def interfaces(self) -> dict[str, tuple[str, Interface]]:
        """``{interface name: (bridge name, interface)}`` over all bridges."""
        return {i.name: (b.name, i) for b in self.bridges for p in b.ports for i in p.interfaces}

    def to_json(self) -> str:
        return canonical_json(self.model_dump(mode="json"))


def canonical_json(data: object) -> str:
    """``json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False)`` plus a newline, byte for byte.

    Encoded by pydantic-core (Rust) after sorting the keys: ``json`` falls back to its
    pure-Python encoder when indenting, which was half the render time of a host.
    """
    return pydantic_core.to_json(_sorted(data), indent=2).decode() + "\n"


def _sorted(data: object) -> object:
    if isinstance(data, dict):
        return {k: _sorted(data[k]) for k in sorted(data)}
    if isinstance(data, list):
        return [_sorted(x) for x in data]
    return data


def load_ovs_spec(text: str | bytes) -> OvsSpec:
    """Parse and validate an ``ovs.json`` (raises pydantic ``ValidationError``)."""
    return OvsSpec.model_validate_json(text)


def interface_type(ovsdb_value: str) -> InterfaceType | str:
    """Map an OVSDB ``Interface.type`` read back from a switch onto the spec's spelling."""
    return "system" if ovsdb_value in ("", "system") else ovsdb_value
