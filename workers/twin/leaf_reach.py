"""Does a leaf's change reach the hosts cabled to it? Pure.

    reach = host_reach(host, LeafChange("leaf-01", before, after))
    reach   # ["linux.json: ports swp1", "frr.conf: interface swp1"]: the host must be in the twin; []: not
    changes = await leaf_changes(model, plan, fetch)      # the changed leaves, both versions
    reached_hosts(model, ["leaf-01"], changes)            # {"kvm-uat-01": ["linux.json: ports swp1"]}
    withdrawn_vnis(changes)                               # {"leaf-01": [10020]}: VNIs it no longer carries

A host's own checks exercise its leaf through its uplink (the uplink probes of
:mod:`workers.hosts.probes`: the host port, the tunnel network's VLAN, gateway SVI and VNI, and
through the fabric the leaf's VTEP and routing). A leaf's change reaches a host unless every part of
it is somewhere the host does not use: another host's port, the VLANs, SVIs, VNIs and VRFs of
networks the host's port does not carry, the leaf's management. Read from the leaf's rendered
configs before (what production runs: the plan is made against the deployed state) and after:

- ``linux.json`` (structured): rows compared one by one (a port, an SVI, a VXLAN, a VRF, one
  bridge VLAN membership; the loopback, the bridge's own settings, the sysctls);
- ``frr.conf``: each line with its enclosing stanzas (``router bgp 65111`` > ``address-family
  l2vpn evpn`` > ``vni 10030``); a changed line is somewhere else only when one of its stanzas
  names another network's VNI or VLAN interface, another host's port or a VRF the host does not
  use. A change of global routing (route maps, prefix lists, BGP settings) reaches every host.

Conservative: a leaf that is new, an artifact it cannot read, or anything not known to be
elsewhere reaches the host.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lintas.workers.model.model import Host, InfraModel
from lintas.workers.render.plan import Plan

LINUX, FRR = "linux.json", "frr.conf"
CLOSERS = frozenset({"exit", "exit-vrf", "exit-vni", "exit-address-family", "end"})
MAX_REASONS = 3


@dataclass(frozen=True, slots=True)
class LeafChange:
    """A changed leaf's rendered configs: ``before`` (None: new, not deployed) and ``after``."""

    leaf: str
    before: Mapping[str, str] | None
    after: Mapping[str, str]


@dataclass(slots=True)
class _Uses:
    """What of the leaf a host uses: its port, VLANs (with their VRFs' L3 VLANs), VNIs and VRFs."""

    port: str
    vlans: set[int] = field(default_factory=set)
    vnis: set[int] = field(default_factory=set)
    vrfs: set[str] = field(default_factory=set)
    host_ports: set[str] = field(default_factory=set)  # every host-facing port of the leaf

    def interface_elsewhere(self, name: str) -> bool:
        if name in self.host_ports:
            return name != self.port
        for prefix, used in (("vlan", self.vlans), ("vni", self.vnis)):
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                return int(name[len(prefix) :]) not in used
        return False


def _linux(text: str | None) -> dict[str, Any]:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _rows(spec: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    rows = spec.get(key)
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _uses(host: Host, specs: Iterable[Mapping[str, Any]]) -> _Uses:
    """From both versions of the leaf: a VLAN the host's port carries in either is the host's."""
    u = _Uses(port=host.uplink.port)
    specs = list(specs)
    for spec in specs:
        for p in _rows(spec, "ports"):
            if p.get("kind") == "host":
                u.host_ports.add(str(p.get("name")))
            if p.get("name") == u.port and isinstance(p.get("bridge"), dict):
                br = p["bridge"]
                u.vlans |= {int(v) for v in [br.get("pvid"), *(br.get("vlans") or [])] if isinstance(v, int)}
    for spec in specs:
        u.vrfs |= {str(s.get("vrf")) for s in _rows(spec, "svis") if s.get("vlan") in u.vlans and s.get("vrf")}
    for spec in specs:
        u.vlans |= {int(s["vlan"]) for s in _rows(spec, "svis") if s.get("kind") == "l3" and s.get("vrf") in u.vrfs}
    for spec in specs:
        u.vnis |= {int(x["vni"]) for x in _rows(spec, "vxlans") if x.get("vlan") in u.vlans and "vni" in x}
        u.vnis |= {int(v["l3_vni"]) for v in _rows(spec, "vrfs") if v.get("name") in u.vrfs and "l3_vni" in v}
    return u


def _linux_items(spec: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """``{item: (its canonical text, its row)}``: one item per row of a named list (with the row), per
    bridge VLAN, per section."""
    out: dict[str, tuple[str, dict[str, Any] | None]] = {}
    for key, value in spec.items():
        if key == "bridge" and isinstance(value, dict):
            out |= {f"bridge vlan {v}": ("member", None) for v in value.get("vlans") or []}
            out["bridge"] = (json.dumps({k: v for k, v in value.items() if k != "vlans"}, sort_keys=True), None)
        elif isinstance(value, list) and all(isinstance(r, dict) and "name" in r for r in value):
            out |= {f"{key} {r['name']}": (json.dumps(r, sort_keys=True), r) for r in value}
        else:
            out[key] = (json.dumps(value, sort_keys=True), None)
    return out


def _linux_elsewhere(item: str, rows: list[dict[str, Any]], u: _Uses) -> bool:
    key, _, name = item.partition(" ")
    if key in ("hostname", "management"):
        return True
    if key == "ports":
        return name != u.port and all(r.get("kind") == "host" for r in rows)
    if key in ("svis", "vxlans"):
        return all(r.get("vlan") not in u.vlans for r in rows)
    if key == "vrfs":
        return name not in u.vrfs
    if item.startswith("bridge vlan "):
        return int(item.rsplit(" ", 1)[1]) not in u.vlans
    return False


def _linux_reach(before: Mapping[str, Any], after: Mapping[str, Any], u: _Uses) -> list[str]:
    old, new = _linux_items(before), _linux_items(after)
    out = []
    for k in sorted(set(old) | set(new)):
        both = [x for x in (old.get(k), new.get(k)) if x is not None]
        if len(both) == 2 and both[0][0] == both[1][0]:
            continue  # the same text before and after
        if not _linux_elsewhere(k, [row for _text, row in both if row is not None], u):
            out.append(k)
    return out


def frr_lines(text: str) -> set[tuple[str, ...]]:
    """Each configuration line of an FRR config with the stanzas enclosing it, by indentation:
    ``("router bgp 65111", "address-family l2vpn evpn", "vni 10030", "route-target import 65000:10030")``.
    Comments, ``!`` separators and ``exit-*`` closers are left out."""
    out: set[tuple[str, ...]] = set()
    stack: list[tuple[int, str]] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        body = line.strip()
        if not body or body.startswith(("!", "#")) or body in CLOSERS:
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        out.add((*(h for _, h in stack), body))
        stack.append((indent, body))
    return out


def _stanza_elsewhere(words: list[str], u: _Uses) -> bool:
    if len(words) >= 2 and words[0] == "interface":
        return u.interface_elsewhere(words[1])
    if len(words) == 2 and words[0] == "vni" and words[1].isdigit():
        return int(words[1]) not in u.vnis
    if len(words) == 2 and words[0] == "vrf":
        return words[1] not in u.vrfs
    if words[:2] == ["router", "bgp"] and "vrf" in words[:-1]:
        return words[words.index("vrf") + 1] not in u.vrfs
    return False


def _frr_reach(before: str, after: str, u: _Uses) -> list[str]:
    changed = frr_lines(before) ^ frr_lines(after)
    reached = {path[0] for path in changed if not any(_stanza_elsewhere(s.split(), u) for s in path)}
    return [f"{FRR}: {top}" for top in sorted(reached)]


def host_reach(host: Host, change: LeafChange) -> list[str]:
    """Why ``change`` reaches ``host`` (cabled to ``change.leaf``): the changed parts of the leaf the
    host uses, at most :data:`MAX_REASONS` (then ``"... and N more"``); empty when it does not."""
    if change.before is None:
        return ["new (not deployed before)"]
    before, after = change.before, change.after
    if set(before) - {LINUX, FRR} or set(after) - {LINUX, FRR}:
        odd = sorted((set(before) | set(after)) - {LINUX, FRR})
        if any(before.get(n) != after.get(n) for n in odd):
            return [f"{', '.join(odd)} changed (not read: assumed to reach it)"]
    old, new = _linux(before.get(LINUX)), _linux(after.get(LINUX))
    if (not old and before.get(LINUX)) or (not new and after.get(LINUX)):
        return [f"{LINUX} unreadable (assumed to reach it)"]
    u = _uses(host, (old, new))
    reasons = [f"{LINUX}: {k}" for k in _linux_reach(old, new, u)]
    reasons += _frr_reach(before.get(FRR, ""), after.get(FRR, ""), u)
    if len(reasons) > MAX_REASONS:
        reasons = [*reasons[:MAX_REASONS], f"... and {len(reasons) - MAX_REASONS} more"]
    return reasons


def _l2_vnis(linux_json: str | None) -> set[int]:
    rows = _rows(_linux(linux_json), "vxlans")
    return {int(x["vni"]) for x in rows if x.get("kind") == "l2" and isinstance(x.get("vni"), int)}


def withdrawn_vnis(changes: Mapping[str, LeafChange]) -> dict[str, list[int]]:
    """The L2 VNIs each changed leaf carried before (its deployed ``linux.json``) and no longer does:
    the leaves still carrying them must see its VTEP gone. A leaf whose configs cannot be read says
    nothing here (its reach to hosts is assumed instead)."""
    out: dict[str, list[int]] = {}
    for leaf, change in sorted(changes.items()):
        if change.before is None:
            continue
        gone = sorted(_l2_vnis(change.before.get(LINUX)) - _l2_vnis(change.after.get(LINUX)))
        if gone:
            out[leaf] = gone
    return out


def reached_hosts(model: InfraModel, changed: Iterable[str], changes: Mapping[str, LeafChange]) -> dict[str, list[str]]:
    """Every host cabled to a changed leaf of ``changed`` that the leaf's change reaches, with why;
    a changed leaf missing from ``changes`` (its configs could not be read) reaches all of its hosts."""
    out: dict[str, list[str]] = {}
    for leaf in sorted(set(changed)):
        if leaf not in model.devices or not model.devices[leaf].is_leaf:
            continue
        for h in model.hosts_by_leaf.get(leaf, ()):
            change = changes.get(leaf)
            why = host_reach(model.hosts[h], change) if change is not None else ["its configs not read"]
            if why:
                out[h] = why
    return out


async def leaf_changes(
    model: InfraModel, plan: Plan, fetch: Callable[[str], Awaitable[bytes | None]]
) -> dict[str, LeafChange]:
    """Both versions of the rendered configs of each new or changed leaf (``fetch``: an artifact's
    text by content id); a leaf whose configs cannot all be read is left out."""
    out: dict[str, LeafChange] = {}
    for leaf in plan.by_status("new") + plan.by_status("changed"):
        if leaf not in model.devices or not model.devices[leaf].is_leaf:
            continue
        tp = plan.targets[leaf]
        if tp.status == "new":
            out[leaf] = LeafChange(leaf, None, {})
            continue
        after_ids = dict(tp.artifacts)
        before_ids = dict(after_ids)
        for d in tp.diffs:  # the changed artifacts, with their ids before (a drift note has none)
            if d.before is not None:
                before_ids[d.name] = d.before
            elif d.after is not None:
                before_ids.pop(d.name, None)
        texts = {i: await fetch(i) for i in {*after_ids.values(), *before_ids.values()}}
        if any(t is None for t in texts.values()):
            continue
        read = {i: (t or b"").decode(errors="replace") for i, t in texts.items()}
        out[leaf] = LeafChange(
            leaf, {n: read[i] for n, i in before_ids.items()}, {n: read[i] for n, i in after_ids.items()}
        )
    return out
