"""libvirt domain XML, read semantically: facts, and what differs between two definitions.

- :func:`domain_facts` extracts what Lintas models (name, uuid, memory, vCPUs, NICs,
  disks, the ``lintas:instance`` or ``nova:instance`` metadata) from a domain XML,
  whether Lintas rendered it or libvirt returned it (``XMLDesc``).
- :func:`semantic_diff` compares a desired definition with an actual one and
  lists the differences that matter, ignoring what libvirt adds on its own
  (PCI addresses, aliases, the emulator path, seclabels, controllers, consoles,
  input and video devices, generated interface ids and ``vnetN`` tap names, the
  expanded machine type, default boot order and lifecycle actions). It is the
  redefine decision of deploy and the domain part of drift. Compare against the
  *inactive* definition (``XMLDesc(VIR_DOMAIN_XML_INACTIVE)``) when deciding to redefine.

XML from a repo template override is untrusted: the parser refuses any DTD (and so
every entity declaration), and bounds the size.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Literal
from xml.parsers import expat

from pydantic import BaseModel, ConfigDict

from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import InputError

LINTAS_NS = "https://lintas.dev/xmlns/libvirt/instance/1.0"
NOVA_NS = ("http://openstack.org/xmlns/libvirt/nova/1.1", "http://openstack.org/xmlns/libvirt/nova/1.0")
MAX_XML_BYTES = 1024 * 1024
_UNITS = {
    "b": 1,
    "bytes": 1,
    "kb": 1000,
    "k": 1024,
    "kib": 1024,
    "mb": 1000**2,
    "m": 1024**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "g": 1024**3,
    "gib": 1024**3,
    "tb": 1000**4,
    "t": 1024**4,
    "tib": 1024**4,
}


class DomainXmlError(InputError):
    """A domain XML that is malformed, too large, or carries a DTD/entities."""


class _Facts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlavorFacts(_Facts):
    name: str | None = None
    memory_mib: int | None = None
    vcpus: int | None = None
    disk_gb: int | None = None
    swap_mib: int | None = None
    ephemeral_gb: int | None = None


class OwnerFacts(_Facts):
    user: str | None = None
    project: str | None = None


class InterfaceFacts(_Facts):
    type: str
    mac: str | None = None
    bridge: str | None = None
    virtualport_type: str | None = None
    interfaceid: str | None = None
    model: str | None = None
    mtu: int | None = None
    target_dev: str | None = None


class DiskFacts(_Facts):
    device: str
    bus: str | None = None
    target: str | None = None
    source: str | None = None
    driver_type: str | None = None


class DomainFacts(_Facts):
    name: str
    uuid: str | None
    domain_type: str
    memory_kib: int | None
    current_memory_kib: int | None
    vcpus: int | None
    cpuset: str | None = None
    shares: int | None = None
    interfaces: tuple[InterfaceFacts, ...] = ()
    disks: tuple[DiskFacts, ...] = ()
    managed_by: Literal["lintas", "nova"] | None = None
    instance_name: str | None = None
    flavor: FlavorFacts | None = None
    owner: OwnerFacts | None = None

    @property
    def macs(self) -> list[str | None]:
        return [i.mac for i in self.interfaces]


# -- parsing ---------------------------------------------------------------


def parse_domain_xml(xml: str | bytes, *, source: str = "domain.xml") -> ET.Element:
    """Parse with expat, refusing DTDs and entity declarations; return the root ``<domain>``."""
    data = xml.encode() if isinstance(xml, str) else xml
    if len(data) > MAX_XML_BYTES:
        raise _error(source, f"domain XML too large ({len(data)} bytes, at most {MAX_XML_BYTES})")
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def refuse(*_args: object) -> None:
        raise _error(source, "domain XML must not contain a DTD or entity declarations (<!DOCTYPE, <!ENTITY)")

    def start(tag: str, attrs: dict[str, str]) -> None:
        builder.start(_qname(tag), {_qname(k): v for k, v in attrs.items()})

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    parser.StartElementHandler = start
    parser.EndElementHandler = lambda tag: builder.end(_qname(tag))
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise _error(source, f"malformed domain XML: {exc}", line=exc.lineno) from exc
    root = builder.close()
    if root.tag != "domain":
        raise _error(source, f"root element is <{root.tag}>, not <domain>")
    return root


def _qname(tag: str) -> str:
    return "{" + tag if "}" in tag else tag


def _error(source: str, message: str, line: int | None = None) -> DomainXmlError:
    return DomainXmlError([Diagnostic(file=source, line=line, message=message)])


def domain_facts(xml: str | bytes, *, source: str = "domain.xml") -> DomainFacts:
    root = parse_domain_xml(xml, source=source)
    return _facts(root, source)


def _facts(root: ET.Element, source: str) -> DomainFacts:
    name = _text(root, "name")
    if not name:
        raise _error(source, "domain has no <name>")
    vcpu = root.find("vcpu")
    managed_by, meta = _instance_metadata(root)
    return DomainFacts(
        name=name,
        uuid=(_text(root, "uuid") or "").lower() or None,
        domain_type=root.get("type", ""),
        memory_kib=_kib(root.find("memory"), source),
        current_memory_kib=_kib(root.find("currentMemory"), source),
        vcpus=_int(vcpu.text if vcpu is not None else None, "vcpu", source),
        cpuset=vcpu.get("cpuset") if vcpu is not None else None,
        shares=_int(_text(root, "cputune/shares"), "cputune shares", source),
        interfaces=tuple(_interface(e, source) for e in root.iterfind("devices/interface")),
        disks=tuple(_disk(e) for e in root.iterfind("devices/disk")),
        managed_by=managed_by,
        instance_name=_text(meta, "name") if meta is not None else None,
        flavor=_flavor(meta, source) if meta is not None else None,
        owner=_owner(meta) if meta is not None else None,
    )


def _instance_metadata(root: ET.Element) -> tuple[Literal["lintas", "nova"] | None, _NsElement | None]:
    md = root.find("metadata")
    if md is None:
        return None, None
    for child in md:
        for ns in (LINTAS_NS, *NOVA_NS):
            if child.tag == f"{{{ns}}}instance":
                return ("lintas" if ns == LINTAS_NS else "nova"), _NsElement(child, ns)
    return None, None


class _NsElement:
    """Finds children in one namespace by local name (``flavor/memory``)."""

    def __init__(self, element: ET.Element, ns: str) -> None:
        self.element, self.ns = element, ns

    def find(self, path: str) -> ET.Element | None:
        return self.element.find("/".join(f"{{{self.ns}}}{part}" for part in path.split("/")))


def _flavor(meta: _NsElement, source: str) -> FlavorFacts | None:
    el = meta.find("flavor")
    if el is None:
        return None

    def num(tag: str) -> int | None:
        return _int(_text(meta, f"flavor/{tag}"), f"flavor {tag}", source)

    return FlavorFacts(
        name=el.get("name"),
        memory_mib=num("memory"),
        vcpus=num("vcpus"),
        disk_gb=num("disk"),
        swap_mib=num("swap"),
        ephemeral_gb=num("ephemeral"),
    )


def _owner(meta: _NsElement) -> OwnerFacts | None:
    if meta.find("owner") is None:
        return None
    return OwnerFacts(user=_text(meta, "owner/user"), project=_text(meta, "owner/project"))


def _interface(el: ET.Element, source: str) -> InterfaceFacts:
    vport = el.find("virtualport")
    mac = el.find("mac")
    return InterfaceFacts(
        type=el.get("type", ""),
        mac=mac.get("address", "").lower() or None if mac is not None else None,
        bridge=_attr(el, "source", "bridge") or _attr(el, "source", "network"),
        virtualport_type=vport.get("type") if vport is not None else None,
        interfaceid=(_attr(vport, "parameters", "interfaceid") or "").lower() or None if vport is not None else None,
        model=_attr(el, "model", "type"),
        mtu=_int(_attr(el, "mtu", "size"), "interface mtu", source),
        target_dev=_attr(el, "target", "dev"),
    )


def _disk(el: ET.Element) -> DiskFacts:
    src = el.find("source")
    source = None
    if src is not None:
        source = src.get("file") or src.get("dev") or src.get("volume") or src.get("name")
    return DiskFacts(
        device=el.get("device", "disk"),
        bus=_attr(el, "target", "bus"),
        target=_attr(el, "target", "dev"),
        source=source,
        driver_type=_attr(el, "driver", "type"),
    )


def _text(el: ET.Element | _NsElement | None, path: str) -> str | None:
    found = el.find(path) if el is not None else None
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _attr(el: ET.Element, child: str, attr: str) -> str | None:
    found = el.find(child)
    return found.get(attr) if found is not None else None


def _int(value: str | None, what: str, source: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        raise _error(source, f"{what} is not a number: {value!r}") from None


def _kib(el: ET.Element | None, source: str) -> int | None:
    if el is None:
        return None
    amount = _int(el.text, el.tag, source)
    factor = _UNITS.get(el.get("unit", "KiB").lower())
    if amount is None or factor is None:
        raise _error(source, f"<{el.tag}> has an unknown unit {el.get('unit')!r}")
    return amount * factor // 1024


# -- comparison ------------------------------------------------------------

# libvirt fills these in when the desired XML leaves them out: compared only when desired sets them
_FILLED_BY_LIBVIRT = (
    "interfaceid",
    "target dev",
    "mtu",
    "machine",
    "arch",
    "boot",
    "on_",
    "cpu mode",
    "memballoon",
    "feature ",
    "clock",
)


def semantic_diff(desired_xml: str | bytes, actual_xml: str | bytes) -> list[str]:
    """Differences that matter, as ``"<what>: <desired> != <actual>"``; empty when equivalent."""
    want = _view(parse_domain_xml(desired_xml, source="desired"), "desired")
    have = _view(parse_domain_xml(actual_xml, source="actual"), "actual")
    out: list[str] = []
    for key in dict.fromkeys([*want, *have]):
        a, b = want.get(key), have.get(key)
        device = _DEVICE.match(key)
        if device is not None:
            whole = device.group(1)
            if whole != key:  # a field of a device: only when both sides have that device
                if want.get(whole) is None or have.get(whole) is None:
                    continue
            elif a is not None and b is not None:  # the whole device: only when one side lacks it
                continue
        if a is None and any(part in key for part in _FILLED_BY_LIBVIRT):
            continue
        if key == "machine" and a is not None and b is not None and _same_machine(a, b):
            continue
        if a != b:
            out.append(f"{key}: {_show(a)} != {_show(b)}")
    return out


_DEVICE = re.compile(r"^((?:interface|disk) \d+)\b")


def _view(root: ET.Element, source: str) -> dict[str, str | None]:
    f = _facts(root, source)
    os_type, cpu = root.find("os/type"), root.find("cpu")
    v: dict[str, str | None] = {
        "name": f.name,
        "uuid": f.uuid,
        "type": f.domain_type,
        "memory KiB": _s(f.memory_kib),
        "currentMemory KiB": _s(f.current_memory_kib or f.memory_kib),
        "vcpus": _s(f.vcpus),
        "vcpu cpuset": f.cpuset,
        "cputune shares": _s(f.shares),
        "os type": _text(root, "os/type"),
        "arch": os_type.get("arch") if os_type is not None else None,
        "machine": os_type.get("machine") if os_type is not None else None,
        "boot": ",".join(b.get("dev", "") for b in root.iterfind("os/boot")) or None,
        "cpu mode": cpu.get("mode") if cpu is not None else None,
        "clock offset": _attr(root, "clock", "offset"),
        "on_poweroff": _text(root, "on_poweroff"),
        "on_reboot": _text(root, "on_reboot"),
        "on_crash": _text(root, "on_crash"),
        "memballoon": _attr(root, "devices/memballoon", "model"),
        "serial ports": _s(len(root.findall("devices/serial"))),
        "graphics": ",".join(sorted(g.get("type", "") for g in root.iterfind("devices/graphics"))) or None,
        "metadata": f.managed_by,
        "interfaces": _s(len(f.interfaces)),
        "disks": _s(len(f.disks)),
    }
    for feature in root.iterfind("features/*"):
        v[f"feature {feature.tag}"] = feature.get("state", "on")
    if f.managed_by is not None:
        for field, value in (f.flavor or FlavorFacts()).model_dump().items():
            v[f"metadata flavor {field.replace('_', ' ')}"] = _s(value)
        for field, value in (f.owner or OwnerFacts()).model_dump().items():
            v[f"metadata owner {field}"] = _s(value)
    for i, nic in enumerate(f.interfaces):
        v[f"interface {i}"] = f"{nic.type} {nic.mac} on {nic.bridge}"
        for field, value in nic.model_dump().items():
            v[f"interface {i} {field.replace('_', ' ')}"] = _s(value)
    for i, disk in enumerate(f.disks):
        v[f"disk {i}"] = f"{disk.device} {disk.target} from {disk.source}"
        for field, value in disk.model_dump().items():
            v[f"disk {i} {field.replace('_', ' ')}"] = _s(value)
    return v


def _s(value: object) -> str | None:
    return None if value is None else str(value)


def _show(value: str | None) -> str:
    return "(none)" if value is None else value


def _same_machine(want: str, have: str) -> bool:
    """``pc``/``q35`` are aliases libvirt expands to ``pc-i440fx-X.Y``/``pc-q35-X.Y``."""
    alias = {"pc": "pc-i440fx-", "q35": "pc-q35-"}.get(want)
    return have == want or (alias is not None and have.startswith(alias)) or have.startswith(want + "-")
