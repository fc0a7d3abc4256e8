"""A change's slice (issue 18, point 4): the part of the fabric a twin must hold to prove it. Pure.

    s = slice_of(model, plan, leaves)  # the render plan (new or changed targets), the leaves' configs
    s.switches                         # {"leaf-01": ["changed"], "spine-01": ["peers with leaf-01"], ...}
    sub = restrict(model, s.names)     # the model seen by the twin: verify checks what the slice holds
    out_of_scope(model, sub)           # ["spine-02 not in the slice: session leaf-01 ↔ spine-02 not checked; ..."]

The slice holds:

1. every changed switch (``new`` or ``changed`` in the plan);
2. every switch a changed one peers with (its fabric links, one eBGP session each);
3. for each network a changed leaf carries (its L2 VNIs, and the VRFs with their L3 VNIs), at
   least one **unchanged** leaf carrying it, so EVPN reachability across the change is tested: a
   leaf already in the slice when one carries it, else the first by name;
4. every changed host a twin can build (its uplink leaf an FRR switch), with its uplink leaf (so
   its uplink and tunnel network work) and the leaf's peers; a changed host whose leaf cannot be
   built is not in the slice (a note says so; the gate records it unproven);
5. every unchanged host whose leaf's change reaches it (:mod:`workers.twin.leaf_reach`: the change
   touches the host's port, its networks' VLANs, SVIs, VNIs or VRFs, the leaf's VTEP or global
   routing), so its uplink probes test the changed leaf; a change confined to other networks of the
   leaf (a VNI the host's port does not carry) leaves the host out;
6. for each L2 VNI a changed leaf withdrew (in its deployed ``linux.json``, not in the new one) and
   that other leaves still carry, one of them, unchanged, so the twin checks that it sees the
   leaf's VTEP gone.

Which networks a change touches is read from the changed leaves (every network they carry), not
from the diff of their configs: conservative, never too small. A change touching every switch
gives the whole topology.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from lintas.workers.deploy import checks as C
from lintas.workers.model.model import InfraModel
from lintas.workers.render.plan import Plan
from lintas.workers.twin.leaf_reach import LeafChange, reached_hosts, withdrawn_vnis

CHANGED = "changed"
MAX_NAMED = 6  # sessions named per switch not built (then "and N more")


@dataclass(frozen=True, slots=True)
class Slice:
    """The switches a twin holds, each with why (``"changed"``, ``"peers with leaf-02"``,
    ``"carries VNI 10100 unchanged"``), and notes on what the slice cannot hold."""

    switches: dict[str, list[str]]
    whole: bool  # every switch of the model
    notes: list[str]
    hosts: dict[str, list[str]] = field(default_factory=dict)  # the hosts it builds, and why ("changed")

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.switches)

    @property
    def host_names(self) -> frozenset[str]:
        return frozenset(self.hosts)

    def lines(self) -> list[str]:
        return [f"{n}: {', '.join(why)}" for n, why in sorted({**self.switches, **self.hosts}.items())]


def changed_targets(plan: Plan) -> tuple[list[str], list[str]]:
    """``(new or changed targets, removed targets)`` of a render plan."""
    return plan.by_status("new") + plan.by_status("changed"), plan.by_status("removed")


def slice_of(model: InfraModel, plan: Plan, leaves: Mapping[str, LeafChange] | None = None) -> Slice:
    """The slice of a render plan; ``leaves``: the changed leaves' configs before and after
    (:func:`workers.twin.leaf_reach.leaf_changes`), which decide the unchanged hosts their change
    reaches (None: hosts are in only when they changed)."""
    changed, removed = changed_targets(plan)
    reached = reached_hosts(model, changed, leaves) if leaves is not None else {}
    return compute_slice(model, changed, removed, reached, withdrawn_vnis(leaves or {}))


class _Members:
    def __init__(self) -> None:
        self.why: dict[str, list[str]] = {}

    def add(self, name: str, why: str) -> None:
        reasons = self.why.setdefault(name, [])
        if why not in reasons:
            reasons.append(why)

    def carrier(self, leaves: Iterable[str], changed: set[str], why: str) -> bool:
        """One unchanged leaf of ``leaves`` (one in the slice already, else the first by name) given
        ``why``; False when every leaf of them changed."""
        unchanged = sorted(n for n in leaves if n not in changed)
        if not unchanged:
            return False
        self.add(next((n for n in unchanged if n in self.why), unchanged[0]), why)
        return True


def compute_slice(
    model: InfraModel,
    changed: Iterable[str],
    removed: Iterable[str] = (),
    reached: Mapping[str, list[str]] | None = None,
    withdrawn: Mapping[str, list[int]] | None = None,
) -> Slice:
    """The slice of ``model`` for a change of the targets ``changed`` (switches or hosts);
    ``reached``: unchanged hosts whose leaf's change reaches them, with why
    (:func:`workers.twin.leaf_reach.reached_hosts`); ``withdrawn``: the L2 VNIs a changed leaf no
    longer carries (:func:`workers.twin.leaf_reach.withdrawn_vnis`)."""
    m = _Members()
    notes: list[str] = []
    targets = sorted(set(changed))
    switches = [n for n in targets if n in model.devices]
    for n in switches:
        m.add(n, CHANGED)
    focus = list(switches)  # whose peers come in
    hosts: dict[str, list[str]] = {}
    for h in (n for n in targets if n in model.hosts):
        leaf = model.hosts[h].uplink.leaf
        if leaf not in model.devices or model.devices[leaf].platform != "frr":
            notes.append(f"host {h} changed: not built, its uplink leaf {leaf} cannot be built in a twin")
            continue
        hosts[h] = [CHANGED]
        m.add(leaf, f"uplink leaf of host {h}")
        focus.append(leaf)
    for h, why in sorted((reached or {}).items()):
        leaf = model.hosts[h].uplink.leaf
        if h in hosts or h in targets:
            continue
        if model.devices[leaf].platform != "frr":
            notes.append(f"host {h}: its leaf {leaf} changed, not built (the leaf cannot be built in a twin)")
            continue
        hosts[h] = [f"its leaf {leaf}'s change reaches it: {'; '.join(why)}"]
        m.add(leaf, f"uplink leaf of host {h}")
    notes += [f"{n}: not in the model, not built" for n in targets if n not in model.devices and n not in model.hosts]
    notes += [f"{n} removed from the model: not built (its peers' changes are)" for n in sorted(set(removed))]
    for n in sorted(set(focus)):
        for link in model.links_by_device.get(n, ()):
            if link.remote(n).device not in switches:  # a changed one is in for that already
                m.add(link.remote(n).device, f"peers with {n}")
    notes += _carriers(m, model, switches, withdrawn or {})
    return Slice(
        switches={n: m.why[n] for n in sorted(m.why) if n in model.devices},
        whole=set(model.devices) <= set(m.why),
        notes=notes,
        hosts=hosts,
    )


def _carriers(m: _Members, model: InfraModel, switches: list[str], withdrawn: Mapping[str, list[int]]) -> list[str]:
    """The networks the change touches, each proven from an unchanged leaf as well (one already in
    the slice when one carries it): every L2 VNI and VRF of a changed leaf, and every L2 VNI one
    withdrew (a leaf still carrying it must see the leaf's VTEP gone). The notes on those none carries."""
    notes: list[str] = []
    leaves = [n for n in switches if model.devices[n].is_leaf]
    everything = set(model.devices) <= set(switches)  # no unchanged leaf at all: nothing to say per network
    nets = sorted({k for n in leaves for k in model.networks_by_leaf.get(n, ())}, key=lambda k: model.networks[k].vni)
    for k in nets:
        net = model.networks[k]
        if not m.carrier(net.leaves, set(switches), f"carries VNI {net.vni} unchanged") and not everything:
            notes.append(f"VNI {net.vni}: no unchanged leaf carries it (checked on the changed leaves only)")
    by_vni = {net.vni: net for net in model.networks.values()}
    for leaf, vnis in sorted(withdrawn.items()):
        for vni in (v for v in vnis if v in by_vni):  # a VNI gone from the model has nobody to check
            m.carrier(by_vni[vni].leaves, set(switches), f"carries VNI {vni} unchanged (withdrawn from {leaf})")
    for vrf in sorted({v for n in leaves for v in model.vrfs_of_leaf(n)}):
        label = f"VRF {vrf} (L3 VNI {model.vrfs[vrf].l3_vni})"
        carriers = [n for n in sorted(model.devices) if vrf in model.vrfs_of_leaf(n)]
        if not m.carrier(carriers, set(switches), f"carries {label} unchanged") and not everything:
            notes.append(f"{label}: no unchanged leaf carries it (checked on the changed leaves only)")
    return notes


def restrict(model: InfraModel, switches: Iterable[str]) -> InfraModel:
    """``model`` seen by a twin holding only ``switches``: their links between them, the networks'
    leaves among them, the hosts on their leaves. Verify's checks computed from it are what the
    slice can check (sessions, routes, remote VTEPs and pings among the built switches)."""
    keep = set(switches)
    devices = {n: d for n, d in model.devices.items() if n in keep}
    links = tuple(lk for lk in model.links if lk.spine.device in keep and lk.leaf.device in keep)
    networks = {k: replace(net, leaves=tuple(n for n in net.leaves if n in keep)) for k, net in model.networks.items()}
    hosts = {k: h for k, h in model.hosts.items() if h.uplink.leaf in keep}
    return replace(
        model,
        devices=devices,
        links=links,
        networks=networks,
        hosts=hosts,
        instances={k: i for k, i in model.instances.items() if i.host in hosts},
        links_by_device={n: tuple(lk for lk in model.links_by_device.get(n, ()) if lk in links) for n in devices},
        networks_by_leaf={n: v for n, v in model.networks_by_leaf.items() if n in keep},
        hosts_by_leaf={n: tuple(h for h in v if h in hosts) for n, v in model.hosts_by_leaf.items() if n in keep},
        instances_by_host={n: v for n, v in model.instances_by_host.items() if n in hosts},
    )


@dataclass(slots=True)
class _Lost:
    """What the whole fabric's checks hold about one switch not built, and the slice's do not."""

    sessions: list[str] = field(default_factory=list)
    vnis: set[str] = field(default_factory=set)
    rib: int = 0
    pings: int = 0

    def line(self, name: str) -> str:
        parts = []
        if self.sessions:
            s = sorted(self.sessions)
            more = f" and {len(s) - MAX_NAMED} more" if len(s) > MAX_NAMED else ""
            parts.append(f"session{'s' if len(s) > 1 else ''} {', '.join(s[:MAX_NAMED])}{more} not checked")
        if self.vnis:
            v = sorted(self.vnis)
            more = f" and {len(v) - MAX_NAMED} more" if len(v) > MAX_NAMED else ""
            parts.append(f"its VTEP as a remote VTEP of VNI {', '.join(v[:MAX_NAMED])}{more} not checked")
        if self.rib:
            parts.append(f"its loopback/VTEP in {self.rib} routing table(s) not checked")
        if self.pings:
            parts.append(f"{self.pings} ping(s) to it not run")
        return f"{name} not in the slice: " + ("; ".join(parts) if parts else "nothing of it checked")


def out_of_scope(model: InfraModel, sliced: InfraModel) -> list[str]:
    """What verify would check on the whole fabric but a twin of ``sliced`` cannot, one line per
    switch not built: ``"spine-02 not in the slice: session leaf-01 ↔ spine-02 not checked; ..."``."""
    keep = set(sliced.devices)
    lost = {n: _Lost() for n in model.devices if n not in keep}
    owner: dict[str, str] = {str(d.loopback): d.name for d in model.devices.values()}
    owner |= {str(d.vtep): d.name for d in model.devices.values() if d.vtep is not None}
    for n in sorted(keep):
        full, part = C.expected_state(model, n), C.expected_state(sliced, n)
        for ip, peer in full.peers.items():
            if ip not in part.peers:
                lost[peer].sessions.append(f"{n} ↔ {peer}")
                owner[ip] = peer
        for vni, remotes in full.vnis.items():
            for ip in set(remotes) - set(part.vnis.get(vni, [])):
                lost[owner[ip]].vnis.add(f"{vni} on {n}")
        for prefix in set(full.prefixes) - set(part.prefixes):
            lost[owner[prefix]].rib += 1
        kept = {p.key for p in part.pings}
        for p in full.pings:
            if p.key not in kept and p.destination in owner:
                lost[owner[p.destination]].pings += 1
    return [lost[n].line(n) for n in sorted(lost)]


def hosts_out_of_scope(model: InfraModel, built: Iterable[str]) -> list[str]:
    """One line per host of ``model`` the twin did not build: its checks are not run."""
    keep = set(built)
    return [
        f"host {h} not in the slice: its OVS, addresses, uplink and domains not checked"
        for h in sorted(model.hosts)
        if h not in keep
    ]
