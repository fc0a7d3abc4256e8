"""Which model objects explain a change to which targets (switches, hypervisors).

**This table only explains a change; it never decides what to render or deploy.** Which
targets change comes from rendering: every target's input fingerprint
(:mod:`workers.render.inputs`), or a full render. The table below is kept by hand and can
be incomplete (a template may read any object's values: every switch's prefix-list lists
every explicit VTEP), so :func:`workers.policy.change.attribute` intersects it with the
plan and attributes any target it misses to every changed object.

The model is cut into *objects* small enough that a change to one means the
same thing for every target that depends on it:

======================================  =============================================
object key                              targets that depend on it
======================================  =============================================
``("fabric", "name"|"mtu"|"management")``  every device and host
``("fabric", "underlay"|"overlay")``    every device
``("device", d)``                       ``d`` (its derived values are included)
``("link", key)``                       both ends (addresses and both ASNs included,
                                        so a spine ASN change reaches every leaf)
``("vrf", v)``                          leaves carrying a network of ``v``
``("network", n)``                      leaves carrying ``n``, hosts trunking it, hosts
                                        with an instance NIC on it
``("carries", leaf, n)``                ``leaf`` (network ``n`` added to / removed from it)
``("host", h)``                         ``h``
``("uplink", h)``                       ``h`` and the leaf it is cabled to (port, MTU,
                                        VLANs: not the tunnel IP)
``("endpoint", h)``                     ``h`` and its geneve peers
``("flavor", f)``                       hosts with an instance of ``f``
``("instance", i)``                     its host
======================================  =============================================

Pools are not objects: what they change shows up in the derived values of
devices and links. The inventory is not either: it changes how Lintas connects,
not what it renders.

:func:`affected_targets` diffs the objects of two models and unions the
dependents of each changed object in *both* models (so a moved instance affects
its old and its new host, and a removed device is reported too). It costs
O(model size) plus the dependents of what changed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

from lintas.workers.model.gcpause import gc_paused
from lintas.workers.model.model import InfraModel

ObjectKey = tuple[str, ...]
_ALL = ("name", "mtu", "management")
_MISSING = object()


def model_objects(model: InfraModel) -> dict[ObjectKey, Any]:
    """Every object of the model by key, as a value that compares equal iff unchanged."""
    f = model.fabric
    objects: dict[ObjectKey, Any] = {
        ("fabric", "name"): f.name,
        ("fabric", "mtu"): f.mtu,
        ("fabric", "management"): f.management,
        ("fabric", "underlay"): f.underlay,
        ("fabric", "overlay"): f.overlay,
    }
    devices = model.devices
    for name, device in devices.items():
        objects[("device", name)] = device
    for link in model.links:
        objects[("link", link.key)] = (link, devices[link.spine.device].asn, devices[link.leaf.device].asn)
    for name, vrf in model.vrfs.items():
        objects[("vrf", name)] = vrf
    for name, net in model.networks.items():
        objects[("network", name)] = replace(net, leaves=())
        for leaf in net.leaves:
            objects[("carries", leaf, name)] = True
    for name, host in model.hosts.items():
        objects[("host", name)] = host
        up = host.uplink  # what the leaf port needs (the tunnel IP is not)
        objects[("uplink", name)] = (up.leaf, up.port, up.nic, up.mtu, up.tunnel_network, tuple(up.networks))
        objects[("endpoint", name)] = host.tunnel_ip
    for name, flavor in model.flavors.items():
        objects[("flavor", name)] = flavor
    for name, inst in model.instances.items():
        objects[("instance", name)] = inst
    return objects


class DependencyGraph:
    """Reverse indexes of one model, answering "who depends on this object?"."""

    def __init__(self, model: InfraModel) -> None:
        self.model = model
        self.devices = frozenset(model.devices)
        self.everything = self.devices | frozenset(model.hosts)
        self._vrf_leaves: defaultdict[str, set[str]] = defaultdict(set)
        for net in model.networks.values():
            self._vrf_leaves[net.vrf].update(net.leaves)
        self._links = {link.key: link for link in model.links}
        self._net_hosts: defaultdict[str, set[str]] = defaultdict(set)
        self._flavor_hosts: defaultdict[str, set[str]] = defaultdict(set)
        self._peer_of: defaultdict[str, set[str]] = defaultdict(set)
        mesh: set[str] = set()
        for name, host in model.hosts.items():
            self._net_hosts[host.uplink.tunnel_network].add(name)
            for network in host.uplink.networks:
                self._net_hosts[network].add(name)
            if host.tunnels is not None:
                if host.tunnels.peers == "all":
                    mesh.add(name)
                else:
                    for peer in host.peers:
                        self._peer_of[peer].add(name)
        self._mesh = frozenset(mesh)
        for inst in model.instances.values():
            self._flavor_hosts[inst.flavor].add(inst.host)
            for nic in inst.nics:
                self._net_hosts[nic.network].add(inst.host)

    def dependents(self, key: ObjectKey) -> set[str]:
        """Targets whose rendered artifacts depend on object ``key`` of this model."""
        m = self.model
        kind = key[0]
        if kind == "fabric":
            return set(self.everything if key[1] in _ALL else self.devices)
        if kind == "device" or kind == "host":
            return {key[1]} & self.everything
        if kind == "link":
            link = self._links.get(key[1])
            return set() if link is None else {link.spine.device, link.leaf.device}
        if kind == "vrf":
            return set(self._vrf_leaves.get(key[1], ()))
        if kind == "network":
            net = m.networks.get(key[1])
            leaves = set(net.leaves) if net is not None else set()
            return leaves | self._net_hosts.get(key[1], set())
        if kind == "carries":
            return {key[1]} & self.devices
        if kind == "uplink":
            host = m.hosts.get(key[1])
            return set() if host is None else {host.name, host.uplink.leaf}
        if kind == "endpoint":
            name = key[1]
            out = {name} & self.everything
            out |= self._peer_of.get(name, set())
            if name in self._mesh:
                out |= self._mesh
            return out
        if kind == "flavor":
            return set(self._flavor_hosts.get(key[1], ()))
        if kind == "instance":
            inst = m.instances.get(key[1])
            return set() if inst is None else {inst.host}
        raise KeyError(f"unknown object kind {kind!r}")


def changed_objects(old: InfraModel, new: InfraModel) -> set[ObjectKey]:
    """Keys of objects added, removed or changed between two models."""
    with gc_paused():
        before, after = model_objects(old), model_objects(new)
        changed = {k for k, v in after.items() if before.get(k, _MISSING) != v}
        changed.update(k for k in before if k not in after)
        return changed


def affected_by(old: InfraModel | None, new: InfraModel) -> dict[str, set[ObjectKey]]:
    """For each affected target, the changed objects that affect it (the "why" of a plan)."""
    with gc_paused():
        return _affected_by(old, new)


def _affected_by(old: InfraModel | None, new: InfraModel) -> dict[str, set[ObjectKey]]:
    out: defaultdict[str, set[ObjectKey]] = defaultdict(set)
    if old is None:
        for target in sorted(DependencyGraph(new).everything):
            out[target].add(("new-model",))
        return dict(out)
    old_graph, new_graph = DependencyGraph(old), DependencyGraph(new)
    for key in sorted(changed_objects(old, new)):
        for target in old_graph.dependents(key) | new_graph.dependents(key):
            out[target].add(key)
    return dict(out)


def affected_targets(old: InfraModel | None, new: InfraModel) -> set[str]:
    """Devices and hosts to re-render when the model goes from ``old`` to ``new``.

    ``old`` None (nothing deployed yet) means every target. Targets removed from
    the model are included; the renderer reports them as removed.
    """
    return set(affected_by(old, new))
