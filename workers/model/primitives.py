"""Value types shared by every schema: names, addresses, MACs, secret references.

Each type validates *and normalises* (MACs lower-case with colons, networks
without host bits), and says what it expected in its error message, because
these messages are what an operator reads in ``lintas validate``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, TypeAlias

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface: TypeAlias = ipaddress.IPv4Interface | ipaddress.IPv6Interface

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})")
_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
SECRET_REF = re.compile(r"(?:env:[A-Za-z_][A-Za-z0-9_]*|file:\S+)")
_PORT_RANGE = re.compile(r"(.*?)(\d+)-(\d+)")
MAX_PORT_RANGE = 1024


class Spec(BaseModel):
    """Base of every repo schema object: unknown keys are errors, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"invalid name {value!r}: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def _network(value: Any) -> IPNetwork:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a network like 10.0.0.0/24, got {value!r}")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"invalid network {value!r}: expected a prefix like 10.0.0.0/24") from None
        raise ValueError(f"invalid network {value!r}: host bits are set (did you mean {loose}?)") from None


def _interface(value: Any) -> IPInterface:
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return value
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"expected an address with prefix length like 10.0.0.1/24, got {value!r}")
    try:
        return ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError(
            f"invalid address {value!r}: expected an address with prefix length like 10.0.0.1/24"
        ) from None


def _address(value: Any) -> IPAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an IP address like 10.0.0.1, got {value!r}")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"invalid IP address {value!r}") from None


def _ipv4(value: Any) -> ipaddress.IPv4Address:
    addr = _address(value)
    if not isinstance(addr, ipaddress.IPv4Address):
        raise ValueError(f"expected an IPv4 address, got {value!r}")
    return addr


def _mac(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError("invalid MAC address: YAML read it as a number; quote it, like 'fa:16:3e:00:00:01'")
    if not isinstance(value, str):
        raise ValueError(f"invalid MAC address {value!r}: expected six hex octets like fa:16:3e:00:00:01")
    norm = value.strip().lower().replace("-", ":")
    if not _MAC.fullmatch(norm):
        raise ValueError(f"invalid MAC address {value!r}: expected six hex octets like fa:16:3e:00:00:01")
    return norm


def _secret(value: Any) -> str:
    if not isinstance(value, str) or not SECRET_REF.fullmatch(value.strip()):
        raise ValueError("secrets must not be written in the repo: use a reference like env:NAME or file:/path")
    return value.strip()


def mac_is_multicast(mac: str) -> bool:
    return bool(int(mac[:2], 16) & 1)


def expand_ports(specs: tuple[str, ...] | list[str]) -> list[str]:
    """``["swp1-4", "eth0"]`` -> ``["swp1", "swp2", "swp3", "swp4", "eth0"]``.

    A range is the last number of a name: ``Ethernet49/1-4`` is
    ``Ethernet49/1`` .. ``Ethernet49/4``.
    """
    out: list[str] = []
    for spec in specs:
        m = _PORT_RANGE.fullmatch(spec)
        if m is None:
            out.append(spec)
            continue
        prefix, first, last = m.group(1), int(m.group(2)), int(m.group(3))
        out.extend(f"{prefix}{n}" for n in range(first, last + 1))
    return out


def _port_spec(value: str) -> str:
    m = _PORT_RANGE.fullmatch(value)
    if m is not None:
        first, last = int(m.group(2)), int(m.group(3))
        if last < first:
            raise ValueError(f"invalid port range {value!r}: {last} is below {first}")
        if last - first + 1 > MAX_PORT_RANGE:
            raise ValueError(f"port range {value!r} is too large (more than {MAX_PORT_RANGE} ports)")
    return value


Name = Annotated[str, AfterValidator(_name)]
Network = Annotated[IPNetwork, BeforeValidator(_network)]
Interface = Annotated[IPInterface, BeforeValidator(_interface)]
Address = Annotated[IPAddress, BeforeValidator(_address)]
IPv4Addr = Annotated[ipaddress.IPv4Address, BeforeValidator(_ipv4)]
Mac = Annotated[str, BeforeValidator(_mac)]
SecretRef = Annotated[str, BeforeValidator(_secret)]
PortSpec = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_port_spec)]
PortName = Annotated[str, Field(min_length=1, max_length=64)]
Asn = Annotated[int, Field(ge=1, le=4_294_967_294)]
Vlan = Annotated[int, Field(ge=1, le=4094)]
Vni = Annotated[int, Field(ge=1, le=16_777_215)]
Mtu = Annotated[int, Field(ge=1280, le=65535)]
NodeId = Annotated[int, Field(ge=1, le=65535)]
Description = Annotated[str, Field(max_length=240)]
