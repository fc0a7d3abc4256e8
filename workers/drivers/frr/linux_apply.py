"""Plan the Linux side of a commit: actual state + desired state -> iproute2 commands (pure).

:func:`plan_linux` walks the desired links in dependency order (VRFs, bridges, VXLAN
devices and ports, VLAN devices) and emits only what differs, while simulating each
command's effect on a copy of the actual state (deleting a bridge releases its ports,
creating one starts empty, ...). The simulated end state is the *predicted* state
after the commit, which :func:`plan_restore` turns back into the state before: the
restore script a device-side timer runs is therefore computed before anything is
changed, so it exists even when the change cuts the management path.

Ownership: the driver deletes a bridge/VXLAN/VRF/VLAN device only when the previous
commit (``previous``, stored on the device) created it and the new candidate no longer
lists it; a port the previous commit managed and the candidate drops is released
(``nomaster``, the addresses it was given removed). Unlisted ports are never touched;
the management interface never appears in a plan (a candidate naming it is an error).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lintas.workers.drivers.frr.linux_model import Desired
from lintas.workers.drivers.frr.state import CREATABLE, PORT_DEFAULTS, RANK, Link, NetState, Vlan

Argv = tuple[str, ...]
_SYSCTL = re.compile(r"[a-z0-9_]+(?:\.[A-Za-z0-9_\-]+)+")
_SYSCTL_VALUE = re.compile(r"[A-Za-z0-9_.:\- ]{1,64}")


@dataclass(frozen=True, slots=True)
class Op:
    argv: Argv
    text: str  # one human-readable line: "+ br10010: create bridge ..."
    target: str  # interface name or sysctl key


@dataclass(slots=True)
class Plan:
    ops: list[Op]
    errors: list[str]
    after: NetState  # predicted
    touched: set[str] = field(default_factory=set)
    touched_sysctls: set[str] = field(default_factory=set)

    @property
    def lines(self) -> list[str]:
        return [op.text for op in self.ops]


def _natural(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _order(link: Link) -> tuple[int, list[object]]:
    return RANK[link.kind], _natural(link.name)


def _onoff(value: bool) -> str:
    return "on" if value else "off"


def create_argv(link: Link) -> Argv:
    info = link.info_dict
    if link.kind == "bridge":
        extra = ("vlan_filtering", "1", "vlan_default_pvid", "0") if info.get("vlan_filtering") else ()
        return ("ip", "link", "add", link.name, "type", "bridge", *extra)
    if link.kind == "vxlan":
        argv = ["ip", "link", "add", link.name, "type", "vxlan", "id", str(info["id"])]
        if info.get("local"):
            argv += ["local", str(info["local"])]
        argv += ["dstport", str(info.get("dstport", 4789))]
        argv.append("learning" if info.get("learning") else "nolearning")
        return tuple(argv)
    if link.kind == "vrf":
        return ("ip", "link", "add", link.name, "type", "vrf", "table", str(info["table"]))
    if link.kind == "vlan":
        return (
            "ip",
            "link",
            "add",
            "link",
            str(info["link"]),
            "name",
            link.name,
            "type",
            "vlan",
            "id",
            str(info["id"]),
        )
    raise ValueError(f"cannot create a {link.kind}")


def _describe(link: Link) -> str:
    info = ", ".join(f"{k} {_onoff(v) if isinstance(v, bool) else v}" for k, v in link.info)
    return f"{link.kind}" + (f" ({info})" if info else "") + (f": {link.note}" if link.note else "")


class _Planner:
    def __init__(self, actual: NetState, protected: set[str], merge: bool) -> None:
        self.cur = dict(actual.links)
        self.ops: list[Op] = []
        self.errors: list[str] = []
        self.touched: set[str] = set()
        self.protected = protected
        self.merge = merge

    def emit(self, target: str, text: str, *argv: str) -> None:
        self.ops.append(Op(tuple(argv), text, target))
        self.touched.add(target)

    def set(self, name: str, **changes: object) -> Link:
        link = self.cur[name].but(**changes)
        self.cur[name] = link
        return link

    def delete(self, name: str, why: str) -> None:
        link = self.cur.pop(name)
        self.emit(name, f"- {name}: delete {link.kind}{why}", "ip", "link", "del", "dev", name)
        for other in list(self.cur.values()):  # what the kernel does to dependants
            if other.kind == "vlan" and other.info_dict.get("link") == name:
                self.cur.pop(other.name)
                self.touched.add(other.name)
            elif other.master == name:
                self.cur[other.name] = other.but(master="", port=(), vlans=())

    def release(self, prev: Link) -> None:
        c = self.cur[prev.name]
        if prev.master and c.master == prev.master:
            self.emit(
                c.name,
                f"~ {c.name}: leave {prev.master} (no longer managed)",
                "ip",
                "link",
                "set",
                "dev",
                c.name,
                "nomaster",
            )
            c = self.set(c.name, master="", port=(), vlans=())
        for a in prev.addresses or ():
            if a in (c.addresses or ()):
                self.emit(c.name, f"- {c.name}: address {a} (no longer managed)", "ip", "addr", "del", a, "dev", c.name)
                c = self.set(c.name, addresses=tuple(x for x in c.addresses or () if x != a))

    def converge(self, d: Link) -> None:  # noqa: C901 - one attribute after another, in kernel order
        name = d.name
        if name in self.protected:
            self.errors.append(f"{name} is the management interface: the driver never changes it")
            return
        c = self.cur.get(name)
        if c is not None and (c.kind != d.kind or any(c.info_dict.get(k) != v for k, v in d.info)):
            if c.kind in CREATABLE and d.kind in CREATABLE:
                self.delete(name, f" (to re-create it as {_describe(d)})")
                c = None
            else:
                self.errors.append(
                    f"{name}: the device has a {c.kind} {dict(c.info) or ''}, the candidate wants "
                    f"a {d.kind}; the driver does not replace it"
                )
                return
        if c is None:
            if d.kind not in CREATABLE:
                self.errors.append(f"{name}: no such {d.kind} on the device (the driver cannot create it)")
                return
            self.emit(name, f"+ {name}: create {_describe(d)}", *create_argv(d))
            c = Link(
                name,
                d.kind,
                info=d.info,
                mtu=None,
                up=False,
                mac=None,
                alias="",
                master="",
                addresses=(),
                port=(),
                vlans=(),
            )
            self.cur[name] = c
        if d.mtu is not None and c.mtu != d.mtu:
            self.emit(
                name,
                f"~ {name}: mtu {c.mtu or 'default'} -> {d.mtu}",
                "ip",
                "link",
                "set",
                "dev",
                name,
                "mtu",
                str(d.mtu),
            )
            c = self.set(name, mtu=d.mtu)
        if d.mac and (c.mac or "") != d.mac:
            self.emit(
                name,
                f"~ {name}: mac {c.mac or 'random'} -> {d.mac}",
                "ip",
                "link",
                "set",
                "dev",
                name,
                "address",
                d.mac,
            )
            c = self.set(name, mac=d.mac)
        if d.alias is not None and (c.alias or "") != d.alias and not (self.merge and not d.alias):
            self.emit(
                name,
                f"~ {name}: description {c.alias or '-'!r} -> {d.alias or '-'!r}",
                "ip",
                "link",
                "set",
                "dev",
                name,
                "alias",
                d.alias,
            )
            c = self.set(name, alias=d.alias)
        if d.master is not None and (c.master or "") != d.master and not (self.merge and not d.master):
            if d.master:
                self.emit(
                    name,
                    f"~ {name}: master {c.master or '-'} -> {d.master}",
                    "ip",
                    "link",
                    "set",
                    "dev",
                    name,
                    "master",
                    d.master,
                )
                bridge = self.cur.get(d.master)
                joins_bridge = bridge is not None and bridge.kind == "bridge"
                c = self.set(
                    name, master=d.master, port=tuple(sorted(PORT_DEFAULTS.items())) if joins_bridge else (), vlans=()
                )
            else:
                self.emit(name, f"~ {name}: master {c.master} -> -", "ip", "link", "set", "dev", name, "nomaster")
                c = self.set(name, master="", port=(), vlans=())
        if d.port:
            have = dict(c.port) or dict(PORT_DEFAULTS)
            diff = [(k, v) for k, v in d.port if have.get(k) != v]
            if diff:
                args = [x for k, v in diff for x in (k, _onoff(v))]
                self.emit(name, f"~ {name}: bridge port {' '.join(args)}", "bridge", "link", "set", "dev", name, *args)
                c = self.set(name, port=tuple(sorted({**have, **dict(d.port)}.items())))
        if d.vlans is not None:
            c = self._vlans(c, d.vlans)
        if d.addresses is not None:
            have_a, want_a = set(c.addresses or ()), set(d.addresses)
            for a in sorted(have_a - want_a) if not self.merge else []:
                self.emit(name, f"- {name}: address {a}", "ip", "addr", "del", a, "dev", name)
            for a in sorted(want_a - have_a):
                self.emit(name, f"+ {name}: address {a}", "ip", "addr", "add", a, "dev", name)
            c = self.set(name, addresses=tuple(sorted(want_a | (have_a if self.merge else set()))))
        if d.up is not None and bool(c.up) != d.up:
            word = "up" if d.up else "down"
            self.emit(name, f"~ {name}: {word}", "ip", "link", "set", "dev", name, word)
            self.set(name, up=d.up)

    def _vlans(self, c: Link, want_vlans: tuple[Vlan, ...]) -> Link:
        name, self_ = c.name, ("self",) if c.kind == "bridge" else ()
        have = {v[0]: v[1:] for v in c.vlans or ()}
        want = {v[0]: v[1:] for v in want_vlans}
        for vid in sorted(set(have) - set(want)) if not self.merge else []:
            self.emit(name, f"- {name}: vlan {vid}", "bridge", "vlan", "del", "dev", name, "vid", str(vid), *self_)
        for vid in sorted(want):
            if have.get(vid) == want[vid]:
                continue
            flags = (("pvid",) if want[vid][0] else ()) + (("untagged",) if want[vid][1] else ())
            self.emit(
                name,
                f"+ {name}: vlan {vid}{''.join(' ' + f for f in flags)}",
                "bridge",
                "vlan",
                "add",
                "dev",
                name,
                "vid",
                str(vid),
                *flags,
                *self_,
            )
        merged = {**have, **want} if self.merge else want
        return self.set(name, vlans=tuple(sorted((v, *f) for v, f in merged.items())))


def plan_linux(
    actual: NetState,
    desired: Desired,
    previous: dict[str, Link] | None = None,
    *,
    merge: bool = False,
    protected: Iterable[str] = (),
) -> Plan:
    """Commands that take ``actual`` to ``desired``; ``previous`` = links of the last commit (ownership)."""
    p = _Planner(actual, {desired.mgmt_interface, *protected}, merge)
    touched_sysctls: set[str] = set()
    for key, value in sorted(desired.sysctls.items()):
        if not _SYSCTL.fullmatch(key) or not _SYSCTL_VALUE.fullmatch(value):
            p.errors.append(f"sysctl {key!r} = {value!r}: not a plain sysctl key and value")
            continue
        have = actual.sysctls.get(key)
        if have != value:
            p.emit(
                key,
                f"~ sysctl {key}: {have if have is not None else '?'} -> {value}",
                "sysctl",
                "-qw",
                f"{key}={value}",
            )
            touched_sysctls.add(key)
    if previous and not merge:
        gone = [link for n, link in previous.items() if n not in desired.links and n in p.cur and n not in p.protected]
        for prev in sorted(gone, key=_order, reverse=True):
            if prev.name not in p.cur:
                continue  # went with its lower device
            if prev.kind in CREATABLE and p.cur[prev.name].kind == prev.kind:
                p.delete(prev.name, " (no longer in the candidate)")
            elif prev.kind in ("port", "loopback"):
                p.release(prev)
    for d in sorted(desired.links.values(), key=_order):
        p.converge(d)
    p.touched -= touched_sysctls
    return Plan(p.ops, p.errors, NetState(p.cur, {**actual.sysctls, **desired.sysctls}), p.touched, touched_sysctls)


def plan_restore(before: NetState, after: NetState, touched: set[str], touched_sysctls: set[str]) -> Plan:
    """Commands that take ``after`` back to ``before`` for what a commit touched."""
    links = {n: before.links[n] for n in touched if n in before.links}
    created = {n: after.links[n] for n in touched if n not in before.links and n in after.links}
    restore = Desired(
        "traditional", links, {k: before.sysctls[k] for k in touched_sysctls if k in before.sysctls}, mgmt_interface=""
    )
    return plan_linux(after, restore, created)


def shell_lines(ops: Iterable[Op], wrap: Callable[[str], str]) -> list[str]:
    """Each op as one shell line ``wrap(<quoted argv>)``, preceded by its text as a comment."""
    out: list[str] = []
    for op in ops:
        out.append("# " + op.text.replace("\n", " "))
        out.append(wrap(shlex.join(op.argv)))
    return out
