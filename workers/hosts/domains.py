"""The libvirt domains of one host: read, converge (Lintas-owned only), snapshot, restore, check.

On a ``kvm`` host Lintas owns the domains that carry its metadata
(``<lintas:instance>``, see :mod:`workers.render.domain`):

- a modelled domain that does not exist is defined from the rendered XML; one that exists
  is redefined only when :func:`~workers.render.domain.semantic_diff` between the rendered
  XML and its *inactive* definition is not empty (libvirt's own additions never count);
  a running domain keeps running, and a change that only a cold boot applies (memory,
  vCPUs) is reported ``restart pending``;
- then its power state is driven to ``running`` (start) or ``stopped`` (ACPI shutdown,
  then destroy after ``shutdown_timeout_s``);
- ``absent`` domains, and Lintas-owned domains the model no longer lists, are stopped and
  undefined only when deletions are allowed; otherwise they are kept and reported.
- A domain with a modelled uuid that is *not* Lintas-owned is never touched: that is an
  error for the operator.

On an ``openstack`` host the connection is read-only and only :func:`check` runs: nova
owns the domains.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict

from lintas.workers.hosts import libvirt_conn
from lintas.workers.hosts.libvirt_conn import libvirt_module
from lintas.workers.hosts.ovsdb import ObservedOvs
from lintas.workers.render.domain import DomainFacts, domain_facts, semantic_diff
from lintas.workers.render.domain_index import (
    DomainIndex,
    ExpectedDomain,
    ExpectedFlavor,
    domain_mismatches,
    nic_mismatches,
    same_mac,
)

T = TypeVar("T")
R = TypeVar("R")

XML_INACTIVE = 2  # libvirt.VIR_DOMAIN_XML_INACTIVE
_NO_FLAVOR = ExpectedFlavor(name="", vcpus=0, ram_mib=0, disk_gb=0, swap_mib=0, ephemeral_gb=0)  # an unmodelled domain
# virDomainState -> what Lintas reports; "running" only when the vCPUs really run (blocked = idle)
_STATES = {
    0: "nostate",
    1: "running",
    2: "running",
    3: "paused",
    4: "shutting down",
    5: "stopped",
    6: "crashed",
    7: "suspended",
}


def power_state(dom: Any) -> str:
    return _STATES.get(int(dom.state()[0]), "unknown")


_UNDEFINE_FLAGS = 1 | 2 | 4 | 32  # MANAGED_SAVE | SNAPSHOTS_METADATA | NVRAM | CHECKPOINTS_METADATA


class DomainError(RuntimeError):
    """A libvirt call failed, or a domain is in the way (not Lintas's)."""


class DomainSnapshot(BaseModel):
    """One domain before a change: what rollback restores."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uuid: str
    name: str
    existed: bool
    active: bool = False
    xml: str | None = None  # inactive definition


class DomainChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uuid: str
    name: str
    actions: list[str] = []
    restart_pending: list[str] = []
    kept: str | None = None  # not done, and why (deletions not allowed)


def open_conn(uri: str, *, readonly: bool) -> Any:
    """:func:`workers.hosts.libvirt_conn.open_conn`, its failure a :class:`DomainError`."""
    try:
        return libvirt_conn.open_conn(uri, readonly=readonly)
    except libvirt_conn.LibvirtConnError as exc:
        raise DomainError(str(exc)) from exc


def _reopen(conn: Any) -> Any:
    try:
        return conn.reopen()
    except libvirt_conn.LibvirtConnError as exc:
        raise DomainError(str(exc)) from exc


def _lookup(conn: Any, uuid: str) -> Any | None:
    lv = libvirt_module()
    try:
        return conn.lookupByUUIDString(uuid)
    except lv.libvirtError as exc:
        if exc.get_error_code() == lv.VIR_ERR_NO_DOMAIN:
            return None
        raise DomainError(f"domain {uuid}: {exc.get_error_message()}") from exc


def _call(what: str, fn: Callable[[], Any]) -> Any:
    lv = libvirt_module()
    try:
        return fn()
    except lv.libvirtError as exc:
        raise DomainError(f"{what}: {exc.get_error_message()}") from exc


def _all_domains(conn: Any) -> dict[str, tuple[Any, str | None]]:
    """``{uuid: (virDomain, managed_by)}`` of every domain defined on the host, in one listing."""
    out: dict[str, tuple[Any, str | None]] = {}
    for dom in _call("list domains", conn.listAllDomains):
        facts = domain_facts(dom.XMLDesc(XML_INACTIVE), source=f"domain {dom.name()}")
        out[dom.UUIDString()] = (dom, facts.managed_by)
    return out


def owned_domains(conn: Any) -> dict[str, Any]:
    """``{uuid: virDomain}`` of every domain carrying Lintas metadata."""
    return {uuid: dom for uuid, (dom, by) in _all_domains(conn).items() if by == "lintas"}


# -- snapshot / restore -----------------------------------------------------------------


def snapshot(conn: Any, uuids: Iterable[str]) -> list[DomainSnapshot]:
    out = []
    for uuid in sorted(set(uuids)):
        dom = _lookup(conn, uuid)
        if dom is None:
            out.append(DomainSnapshot(uuid=uuid, name="", existed=False))
        else:
            out.append(
                DomainSnapshot(
                    uuid=uuid, name=dom.name(), existed=True, active=bool(dom.isActive()), xml=dom.XMLDesc(XML_INACTIVE)
                )
            )
    return out


def restore(conn: Any, snaps: list[DomainSnapshot], *, shutdown_timeout_s: float, parallelism: int = 4) -> list[str]:
    """Back to the snapshot: created domains removed, changed ones redefined, power restored."""
    done = each_domain(conn, parallelism, lambda c, s: _restore_one(c, s, shutdown_timeout_s), snaps, "restore")
    return [line for lines in done for line in lines]


def each_domain(conn: Any, parallelism: int, fn: Callable[[Any, T], R], items: list[T], name: str) -> list[R]:
    """``fn(connection, item)`` for every item, ``parallelism`` at once, in order. Each thread calls
    libvirt on a connection of its own (``conn.reopen()``, closed after): libvirt's client crashes
    when two threads call one connection at once (:mod:`workers.hosts.libvirt_conn`), and sharing
    one under a lock would run a slow call (a domain's ``destroy``) one domain at a time."""
    workers = max(1, min(parallelism, len(items)))
    if workers == 1:
        return [fn(conn, item) for item in items]
    mine = threading.local()
    opened: list[Any] = []
    guard = threading.Lock()

    def run(item: T) -> R:
        c = getattr(mine, "conn", None)
        if c is None:
            c = mine.conn = _reopen(conn)
            with guard:
                opened.append(c)
        return fn(c, item)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"lv-{name}") as pool:
            return list(pool.map(run, items))
    finally:
        for c in opened:
            if c is not conn:
                with contextlib.suppress(Exception):  # closing a dead connection
                    c.close()


def _restore_one(conn: Any, s: DomainSnapshot, shutdown_timeout_s: float) -> list[str]:
    done = []
    dom = _lookup(conn, s.uuid)
    if not s.existed:
        if dom is not None:
            _stop(dom, 0.0)
            _undefine_checked(dom)
            done.append(f"{s.uuid}: removed (created by the change)")
        return done
    assert s.xml is not None
    if dom is None or semantic_diff(s.xml, dom.XMLDesc(XML_INACTIVE)):
        dom = _define(conn, s.name, s.xml)
        done.append(f"{s.name}: definition restored")
    if s.active and not dom.isActive():
        _call(f"start {s.name}", dom.create)
        done.append(f"{s.name}: started")
    elif not s.active and dom.isActive():
        _stop(dom, shutdown_timeout_s)
        done.append(f"{s.name}: stopped")
    return done


def _define(conn: Any, name: str, xml: str) -> Any:
    return _call(f"define {name}", lambda: conn.defineXML(xml))


def _undefine_checked(dom: Any) -> None:
    _call(f"undefine {dom.name()}", lambda: _undefine(dom))


def _undefine(dom: Any) -> None:
    lv = libvirt_module()
    try:
        dom.undefineFlags(_UNDEFINE_FLAGS)
    except lv.libvirtError:
        dom.undefine()


def _stop(dom: Any, timeout_s: float) -> str:
    """ACPI shutdown, then destroy after ``timeout_s`` (0: destroy at once)."""
    lv = libvirt_module()
    if not dom.isActive():
        return "already stopped"
    if timeout_s > 0:
        with contextlib.suppress(lv.libvirtError):
            dom.shutdown()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not dom.isActive():
                return "shut down"
            time.sleep(0.2)
    try:
        dom.destroy()
    except lv.libvirtError as exc:
        if dom.isActive():
            raise DomainError(f"destroy {dom.name()}: {exc.get_error_message()}") from exc
    return "destroyed" if timeout_s <= 0 else f"destroyed after {timeout_s:g} s without ACPI shutdown"


# -- converge ----------------------------------------------------------------------------


def converge(
    conn: Any,
    index: DomainIndex,
    xmls: dict[str, str],
    *,
    allow_deletions: bool,
    shutdown_timeout_s: float,
    parallelism: int,
) -> list[DomainChange]:
    """Drive the host's Lintas-owned domains to ``index`` (kvm hosts only)."""
    if index.managed_by != "lintas":
        raise DomainError(f"{index.host}: nova owns its domains; Lintas never changes them")
    every = _all_domains(conn)
    owned = {uuid: dom for uuid, (dom, by) in every.items() if by == "lintas"}
    modelled = index.by_uuid()
    for uuid in modelled:
        if uuid in every and uuid not in owned:
            dom = every[uuid][0]
            raise DomainError(
                f"domain {dom.name()} ({uuid}) exists on {index.host} but is not Lintas-managed: "
                "refusing to take it over"
            )

    def one(c: Any, exp: ExpectedDomain) -> DomainChange:
        return _converge_one(c, exp, xmls, allow_deletions=allow_deletions, shutdown_timeout_s=shutdown_timeout_s)

    todo = list(modelled.values())
    for uuid, dom in sorted(owned.items()):
        if uuid not in modelled:  # removed from the repo: treated as absent
            facts = domain_facts(dom.XMLDesc(XML_INACTIVE))
            todo.append(
                ExpectedDomain(
                    name=facts.name or uuid,
                    uuid=uuid,
                    state="absent",
                    project="",
                    owner="",
                    flavor=_NO_FLAVOR,
                    memory_kib=0,
                    vcpus=0,
                    nics=[],
                )
            )
    return each_domain(conn, parallelism, one, todo, index.host)


def _converge_one(
    conn: Any, exp: ExpectedDomain, xmls: dict[str, str], *, allow_deletions: bool, shutdown_timeout_s: float
) -> DomainChange:
    ch = DomainChange(uuid=exp.uuid, name=exp.name)
    dom = _lookup(conn, exp.uuid)
    if exp.state == "absent":
        if dom is None:
            return ch
        if not allow_deletions:
            ch.kept = "kept: removing domains needs deletions allowed (deploy.allow_deletions / with: allow_deletions)"
            return ch
        ch.actions.append(_stop(dom, shutdown_timeout_s))
        _call(f"undefine {exp.name}", lambda: _undefine(dom))
        ch.actions.append("undefined")
        return ch
    if exp.xml is None or exp.xml not in xmls:
        raise DomainError(f"{exp.name}: no rendered domain XML ({exp.xml})")
    xml = xmls[exp.xml]
    if dom is None:
        dom = _call(f"define {exp.name}", lambda: conn.defineXML(xml))
        ch.actions.append("defined")
    else:
        diff = semantic_diff(xml, dom.XMLDesc(XML_INACTIVE))
        if diff:
            dom = _call(f"redefine {exp.name}", lambda: conn.defineXML(xml))
            ch.actions.append("redefined: " + "; ".join(diff))
            if dom.isActive():
                live = domain_facts(dom.XMLDesc(0))
                ch.restart_pending = _cold_boot_only(exp, live)
    active = bool(dom.isActive())
    if exp.state == "running" and not active:
        _call(f"start {exp.name}", dom.create)
        ch.actions.append("started")
    elif exp.state == "running" and power_state(dom) == "paused":
        _call(f"resume {exp.name}", dom.resume)
        ch.actions.append("resumed")
    elif exp.state == "stopped" and active:
        ch.actions.append(_stop(dom, shutdown_timeout_s))
    return ch


def _cold_boot_only(exp: ExpectedDomain, live: DomainFacts) -> list[str]:
    out = []
    if live.memory_kib != exp.memory_kib:
        out.append(f"memory {live.memory_kib} -> {exp.memory_kib} KiB at the next cold boot")
    if live.vcpus != exp.vcpus:
        out.append(f"vcpus {live.vcpus} -> {exp.vcpus} at the next cold boot")
    return out


# -- check (verify, drift) ----------------------------------------------------------------


class DomainObservation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    uuid: str
    name: str | None
    defined: bool
    active: bool = False
    state: str = "absent"  # running | paused | stopped | crashed | ... (see power_state)
    inactive_xml: str | None = None
    live_xml: str | None = None


def observe(conn: Any, uuids: Iterable[str]) -> dict[str, DomainObservation]:
    out = {}
    for uuid in sorted(set(uuids)):
        dom = _lookup(conn, uuid)
        if dom is None:
            out[uuid] = DomainObservation(uuid=uuid, name=None, defined=False)
            continue
        state = power_state(dom)
        # the live XML only of a running domain: libvirt asks QEMU for it, and a wedged QEMU
        # (a paused, crashed guest) can keep that call waiting for its monitor timeout
        out[uuid] = DomainObservation(
            uuid=uuid,
            name=dom.name(),
            defined=True,
            active=bool(dom.isActive()),
            state=state,
            inactive_xml=dom.XMLDesc(XML_INACTIVE),
            live_xml=dom.XMLDesc(0) if state == "running" else None,
        )
    return out


class DomainCheck(NamedTuple):
    """One check of a modelled domain (``subject``: state, definition, ``nic <i> (<network>)``)."""

    domain: str
    subject: str
    passed: bool
    expected: str
    observed: str


def check(
    index: DomainIndex, seen: dict[str, DomainObservation], ovs: ObservedOvs | None, *, deletions_allowed: bool
) -> list[DomainCheck]:
    """Every modelled domain's checks: power state; the definition's vCPUs and memory (its own
    fields, :func:`~workers.render.domain_index.domain_mismatches`); every NIC's MAC and bridge
    in the live domain (both kinds of host) and its tap port on that OVS bridge carrying that MAC."""
    out: list[DomainCheck] = []
    ifaces = ovs.interfaces() if ovs is not None else {}
    for exp in index.domains:
        obs = seen.get(exp.uuid) or DomainObservation(uuid=exp.uuid, name=None, defined=False)
        label = exp.name if obs.name in (None, exp.name) else f"{exp.name} ({obs.name})"
        have_state = obs.state if obs.defined else "absent"
        if exp.state == "absent" and obs.defined and not deletions_allowed and index.managed_by == "lintas":
            out.append(DomainCheck(label, "state", True, "absent", f"{have_state} (kept: deletions not allowed)"))
            continue
        out.append(DomainCheck(label, "state", have_state == exp.state, exp.state, have_state))
        if not obs.defined or exp.state == "absent":
            continue
        assert obs.inactive_xml is not None
        definition = domain_facts(obs.inactive_xml, source=f"domain {obs.name}")
        problems = domain_mismatches(exp, definition, nics=False)  # the NICs are checked live, below
        out.append(
            DomainCheck(
                label,
                "definition",
                not problems,
                f"vcpus {exp.vcpus}, memory {exp.memory_kib} KiB",
                "; ".join(map(str, problems)) or f"vcpus {definition.vcpus}, memory {definition.memory_kib} KiB",
            )
        )
        facts = domain_facts(obs.live_xml, source=f"domain {obs.name}") if obs.live_xml else definition
        for i, nic in enumerate(exp.nics):
            got = facts.interfaces[i] if i < len(facts.interfaces) else None
            subject = f"nic {i} ({nic.network})"
            want = f"{nic.mac} on {nic.bridge}"
            if got is None:
                out.append(DomainCheck(label, subject, False, want, "no such interface"))
                continue
            have = f"{got.mac} on {got.bridge}"
            ok = not [m for m in nic_mismatches(i, nic, got) if m.field in ("mac", "bridge")]
            if ok and obs.active and ovs is not None:
                dev = got.target_dev
                placed = ifaces.get(dev) if dev else None
                if placed is None:
                    ok, have = False, f"{have}, but tap {dev} is on no OVS bridge"
                elif placed[0] != nic.bridge:
                    ok, have = False, f"{have}, but tap {dev} is on OVS bridge {placed[0]}"
                elif not same_mac(nic.mac, placed[1].external_ids.get("attached-mac", nic.mac)):
                    ok, have = False, f"{have}, but OVS {dev} attached-mac {placed[1].external_ids['attached-mac']}"
                else:
                    have = f"{have} (OVS port {dev})"
            out.append(DomainCheck(label, subject, ok, want, have))
    return out


def drift(index: DomainIndex, xmls: dict[str, str], seen: dict[str, DomainObservation]) -> list[str]:
    """What differs from the last deployed state: the definition (Lintas-owned, by semantic
    compare), the power state, and for nova hosts the modelled facts (MACs above all)."""
    out = []
    for exp in index.domains:
        obs = seen.get(exp.uuid)
        name = exp.name
        if obs is None or not obs.defined:
            if exp.state != "absent":
                out.append(f"domain {name}: not defined (want {exp.state})")
            continue
        if exp.state == "absent":
            out.append(f"domain {name}: defined (want absent)")
            continue
        have = obs.state
        if have != exp.state:
            out.append(f"domain {name}: {have} (want {exp.state})")
        assert obs.inactive_xml is not None
        if index.managed_by == "lintas" and exp.xml in xmls:
            out += [f"domain {name}: {d}" for d in semantic_diff(xmls[exp.xml], obs.inactive_xml)]
        else:
            facts = domain_facts(obs.live_xml or obs.inactive_xml, source=f"domain {obs.name}")
            out += [f"domain {name} ({obs.name}): {m}" for m in domain_mismatches(exp, facts)]
    return out
