"""``load_model``: read the infra repo, check everything, return the resolved model.

Problems are collected, never raised one at a time: syntax and schema errors of
every file, then (when the fabric settings are readable) every semantic check.
One :class:`~engine.errors.ModelError` carries them all, sorted by file and line.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import InputError, ModelError
from lintas.engine.repofs import RepoFS
from lintas.engine.yamlsafe import Located, load_yaml
from lintas.workers.model.cache import ModelCache
from lintas.workers.model.checks_fabric import check_devices, check_overlaps, check_tenants
from lintas.workers.model.checks_hosts import check_hosts
from lintas.workers.model.checks_instances import check_instances
from lintas.workers.model.checks_inventory import check_inventory
from lintas.workers.model.derive import derive_devices, derive_links
from lintas.workers.model.draft import Draft
from lintas.workers.model.gcpause import gc_paused
from lintas.workers.model.model import InfraModel, Inventory, Link
from lintas.workers.model.schema_fabric import DevicesFile, FabricFile, LinksFile, TenantsFile
from lintas.workers.model.schema_hosts import FlavorsFile, HostsFile, InstancesFile
from lintas.workers.model.schema_inventory import InventoryDefaults, InventoryGroup, InventoryHost
from lintas.workers.model.source import Origin, Parsed, Report, parse_document, parse_mapping, parse_single

FABRIC = "fabric/fabric.yaml"
DEVICES = "fabric/devices.yaml"
LINKS = "fabric/links.yaml"
TENANTS = "fabric/tenants.yaml"
HOSTS = "hosts/hosts.yaml"
FLAVORS = "hosts/flavors.yaml"
INSTANCES = "hosts/instances.yaml"
INV_HOSTS = "inventory/hosts.yaml"
INV_GROUPS = "inventory/groups.yaml"
INV_DEFAULTS = "inventory/defaults.yaml"
MODEL_FILES = (FABRIC, DEVICES, LINKS, TENANTS, HOSTS, FLAVORS, INSTANCES, INV_HOSTS, INV_GROUPS, INV_DEFAULTS)
REQUIRED_FILES = frozenset({FABRIC, DEVICES})
# what each file defines, so that an unreadable file does not make every reference to it "unknown"
_KINDS = {
    DEVICES: ("device",),
    TENANTS: ("vrf", "network"),
    HOSTS: ("host",),
    FLAVORS: ("flavor",),
    INSTANCES: ("instance",),
    INV_GROUPS: ("inventory-group",),
}

Reader = Callable[[str], Located | None]


def load_model(root: Path, *, cache: ModelCache | None = None) -> InfraModel:
    """Validate the infra repo checked out at ``root``. Raises ModelError with every problem.

    With a ``cache``, files whose content was seen before are not parsed again.
    """
    fs = RepoFS(root)

    def read(rel: str) -> Located | None:
        if not fs.exists(rel):
            return None
        if cache is None:
            return fs.load_yaml(rel)
        return cache.document(
            rel, fs.read_bytes(rel), lambda data: load_yaml(data, file=rel, max_bytes=fs.max_file_bytes)
        )

    return build_model(read, cache=cache)


def load_model_texts(texts: Mapping[str, str | bytes], *, cache: ModelCache | None = None) -> InfraModel:
    """Validate a repo given as ``{relative path: content}`` (a git revision, a generated fabric)."""

    def read(rel: str) -> Located | None:
        if rel not in texts:
            return None
        text = texts[rel]
        if cache is None:
            return load_yaml(text, file=rel)
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        return cache.document(rel, data, lambda raw: load_yaml(raw, file=rel))

    return build_model(read, cache=cache)


def build_model(read: Reader, *, cache: ModelCache | None = None) -> InfraModel:
    """Read every model file through ``read`` (None: absent) and check it all."""
    with gc_paused():
        return _build(read, cache)


def _build(read: Reader, cache: ModelCache | None) -> InfraModel:
    report = Report()
    draft = Draft(report)
    docs: dict[str, Located] = {}
    for rel in MODEL_FILES:
        try:
            doc = read(rel)
        except InputError as exc:
            report.extend(exc.diagnostics)
            draft.unavailable.update(_KINDS.get(rel, ()))
            continue
        if doc is None:
            if rel in REQUIRED_FILES:
                report.extend([Diagnostic(file=rel, message="required file is missing")])
                draft.unavailable.update(_KINDS.get(rel, ()))
            continue
        docs[rel] = doc
    fabric_origin = _parse(draft, docs, cache)
    fabric = draft.fabric
    if fabric is not None and fabric_origin is not None:
        derive_devices(draft, fabric)
        check_devices(draft, fabric)
        derive_links(draft, fabric)
        check_tenants(draft, fabric)
        check_overlaps(draft, fabric, fabric_origin)
        check_hosts(draft, fabric)
        check_instances(draft)
        check_inventory(draft)
    if report or fabric is None:
        diagnostics = report.sorted()
        total = max(report.total, len(diagnostics))
        raise ModelError(diagnostics, summary=f"the infra model has {total} problem(s)", total=total)
    return _assemble(draft, fabric)


class _Parser:
    """Schema parsing of whole files, through the cache when there is one."""

    def __init__(self, report: Report, cache: ModelCache | None) -> None:
        self.report, self.cache = report, cache

    def document(self, doc: Located, model: type[BaseModel]) -> Parsed:
        if self.cache is None:
            return parse_document(doc, model, self.report)
        return self.cache.parsed(doc, lambda own: parse_document(doc, model, own), self.report)

    def mapping(self, doc: Located, item: type[BaseModel]) -> list[tuple[str, Any, Origin]]:
        if self.cache is None:
            return parse_mapping(doc, item, self.report)
        return self.cache.parsed(doc, lambda own: parse_mapping(doc, item, own), self.report)


def _parse(draft: Draft, docs: dict[str, Located], cache: ModelCache | None) -> Origin | None:
    parser = _Parser(draft.report, cache)
    fabric_origin = None
    if (doc := docs.get(FABRIC)) is not None:
        draft.fabric = parser.document(doc, FabricFile).values.get("fabric")
        fabric_origin = Origin(doc, ())
    hostnames: dict[str, Origin] = {}
    if (doc := docs.get(DEVICES)) is not None:
        parsed = parser.document(doc, DevicesFile)
        _collect(draft, "device", parsed.items.get("devices", []), draft.devices, "hostname", hostnames)
        _broken(draft, "device", parsed.broken.get("devices"), "devices" in parsed.failed)
    if (doc := docs.get(LINKS)) is not None:
        draft.links = parser.document(doc, LinksFile).items.get("links", [])
    if (doc := docs.get(TENANTS)) is not None:
        parsed = parser.document(doc, TenantsFile)
        _collect(draft, "vrf", parsed.items.get("vrfs", []), draft.vrfs, "VRF name")
        _collect(draft, "network", parsed.items.get("networks", []), draft.networks, "network name")
        _broken(draft, "vrf", parsed.broken.get("vrfs"), "vrfs" in parsed.failed)
        _broken(draft, "network", parsed.broken.get("networks"), "networks" in parsed.failed)
    if (doc := docs.get(HOSTS)) is not None:
        parsed = parser.document(doc, HostsFile)
        if "defaults" in parsed.values:
            draft.host_defaults = parsed.values["defaults"]
        _collect(draft, "host", parsed.items.get("hosts", []), draft.hosts, "hostname", hostnames)
        _broken(draft, "host", parsed.broken.get("hosts"), "hosts" in parsed.failed)
    if (doc := docs.get(FLAVORS)) is not None:
        parsed = parser.document(doc, FlavorsFile)
        _collect(draft, "flavor", parsed.items.get("flavors", []), draft.flavors, "flavor name")
        _broken(draft, "flavor", parsed.broken.get("flavors"), "flavors" in parsed.failed)
    if (doc := docs.get(INSTANCES)) is not None:
        parsed = parser.document(doc, InstancesFile)
        _collect(draft, "instance", parsed.items.get("instances", []), draft.instances, "instance name")
    _parse_inventory(draft, docs, parser)
    return fabric_origin


def _parse_inventory(draft: Draft, docs: dict[str, Located], parser: _Parser) -> None:
    if (doc := docs.get(INV_HOSTS)) is not None:
        for name, entry, origin in parser.mapping(doc, InventoryHost):
            draft.inventory_hosts[name] = entry
            draft.origins[("inventory-host", name)] = origin
    if (doc := docs.get(INV_GROUPS)) is not None:
        raw = doc.data if isinstance(doc.data, dict) else {}
        draft.broken["inventory-group"].update(str(k) for k in raw)
        for name, entry, origin in parser.mapping(doc, InventoryGroup):
            draft.inventory_groups[name] = entry
            draft.origins[("inventory-group", name)] = origin
    if (doc := docs.get(INV_DEFAULTS)) is not None and (single := parse_single(doc, InventoryDefaults, draft.report)):
        draft.inventory_defaults = single[0]
        draft.origins[("inventory-defaults", "")] = single[1]


def _collect(
    draft: Draft,
    kind: str,
    items: list[tuple[Any, Origin]],
    into: dict[str, Any],
    what: str,
    namespace: dict[str, Origin] | None = None,
) -> None:
    """Index items by name; a repeated name is reported and the first definition kept."""
    seen = namespace if namespace is not None else {}
    for spec, origin in items:
        first = seen.get(spec.name)
        if first is not None:
            draft.report.add(origin, f"duplicate {what} '{spec.name}' (first defined at {first.where('name')})", "name")
            continue
        seen[spec.name] = origin
        into[spec.name] = spec
        draft.origins[(kind, spec.name)] = origin


def _broken(draft: Draft, kind: str, names: set[str] | None, failed: bool) -> None:
    if names:
        draft.broken[kind].update(names)
    if failed:
        draft.unavailable.add(kind)


def _assemble(draft: Draft, fabric: Any) -> InfraModel:
    links = tuple(link for link, _origin in draft.r_links)
    by_device: defaultdict[str, list[Link]] = defaultdict(list)
    for link in links:
        by_device[link.spine.device].append(link)
        by_device[link.leaf.device].append(link)
    by_leaf: defaultdict[str, list[str]] = defaultdict(list)
    for net in draft.r_networks.values():
        for leaf in net.leaves:
            by_leaf[leaf].append(net.name)
    hosts_by_leaf: defaultdict[str, list[str]] = defaultdict(list)
    for host in draft.r_hosts.values():
        hosts_by_leaf[host.uplink.leaf].append(host.name)
    by_host: defaultdict[str, list[str]] = defaultdict(list)
    for inst in draft.instances.values():
        by_host[inst.host].append(inst.name)
    origins = dict(draft.origins)
    for link, origin in draft.r_links:
        origins[("link", link.key)] = origin
    return InfraModel(
        fabric=fabric,
        devices=draft.r_devices,
        links=links,
        vrfs=draft.vrfs,
        networks=draft.r_networks,
        hosts=draft.r_hosts,
        flavors=draft.flavors,
        instances=draft.instances,
        inventory=Inventory(draft.inventory_hosts, draft.inventory_groups, draft.inventory_defaults),
        origins=origins,
        links_by_device={k: tuple(v) for k, v in by_device.items()},
        networks_by_leaf={k: tuple(v) for k, v in by_leaf.items()},
        hosts_by_leaf={k: tuple(v) for k, v in hosts_by_leaf.items()},
        instances_by_host={k: tuple(v) for k, v in by_host.items()},
    )
