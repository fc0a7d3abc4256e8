"""One hypervisor host, end to end: snapshot, apply, verify, restore, drift (blocking; run in threads).

A host's bundle is its rendered artifacts: ``ovs.json`` always, ``domains.json`` and
``domains/<name>.xml`` on ``kvm`` hosts, ``expected.json`` on ``openstack`` hosts.

- :func:`take_snapshot` before any change: the OVS rows and keys the change may touch,
  the addresses on those interfaces, and every domain the change may touch. Stored by the
  deploy stage before :func:`apply`, so a crash mid-change still has it.
- :func:`apply`: OVSDB in one transaction, then the addresses, then (``kvm`` only) the
  domains. Never a nova domain: the ``openstack`` connection is read-only.
- :func:`checks`: OVS/OVN state and health, addresses, the uplink (full-MTU don't-fragment
  pings from the tunnel address: :mod:`workers.hosts.probes`), and every modelled domain
  (state, vCPUs/memory, each NIC's MAC and bridge, its tap on that OVS bridge).
- :func:`restore` + :func:`restored_differences`: back to the snapshot, then compared with it.
- :func:`drift`: the host against its last deployed bundle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ConfigDict

from lintas.workers.checks import Check
from lintas.workers.hosts import domains as D
from lintas.workers.hosts import linux, ovsdb
from lintas.workers.hosts import probes as P
from lintas.workers.hosts.connect import HostConn
from lintas.workers.render.domain import semantic_diff
from lintas.workers.render.domain_index import DomainIndex, load_domain_index
from lintas.workers.render.ovs_schema import IpAddress, OvsSpec, load_ovs_spec


class HostSnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str
    ovs: OvsSpec
    domains: list[D.DomainSnapshot] = []


class HostApplied(BaseModel):
    model_config = ConfigDict(extra="forbid")

    changes: list[str] = []
    restart_pending: list[str] = []
    kept: list[str] = []

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def spec_of(bundle: dict[str, str]) -> OvsSpec:
    return load_ovs_spec(bundle["ovs.json"])


def index_of(bundle: dict[str, str]) -> DomainIndex | None:
    raw = bundle.get("domains.json") or bundle.get("expected.json")
    return load_domain_index(raw) if raw else None


@contextmanager
def _libvirt(conn: HostConn) -> Iterator[Any]:
    lv = D.open_conn(conn.libvirt_uri, readonly=conn.readonly)
    try:
        yield lv
    finally:
        with contextlib.suppress(Exception):  # closing a dead connection
            lv.close()


def _address_scope(*specs: OvsSpec | None) -> set[str]:
    return {a.interface for s in specs if s is not None for a in s.ip_addresses}


def take_snapshot(
    conn: HostConn, bundle: dict[str, str], previous: dict[str, str] | None, timeout_s: float
) -> HostSnapshot:
    spec = spec_of(bundle)
    prev = spec_of(previous) if previous else None
    with ovsdb.session(conn.ovsdb, timeout_s) as api:
        obs = ovsdb.read(api)
    have = linux.addresses(conn, _address_scope(spec, prev))
    addrs = [IpAddress(interface=i, address=a) for i, lst in sorted(have.items()) for a in lst]
    snap = HostSnapshot(host=conn.name, ovs=ovsdb.snapshot(obs, spec, prev, addrs))
    index = index_of(bundle)
    if index is not None and index.managed_by == "lintas":
        with _libvirt(conn) as lv:
            uuids = {d.uuid for d in index.domains} | set(D.owned_domains(lv))
            snap.domains = D.snapshot(lv, uuids)
    return snap


def apply(
    conn: HostConn,
    bundle: dict[str, str],
    previous: dict[str, str] | None,
    *,
    allow_deletions: bool,
    shutdown_timeout_s: float,
    parallelism: int,
    timeout_s: float,
    between: Callable[[], None] | None = None,
) -> HostApplied:
    """Converge the host; ``between`` runs after OVSDB and the addresses, before the domains
    (the crash drills stop there: :mod:`workers.deploy.faults`)."""
    spec = spec_of(bundle)
    prev = spec_of(previous) if previous else None
    out = HostApplied()
    with ovsdb.session(conn.ovsdb, timeout_s) as api:
        out.changes += [f"ovs: {s.description}" for s in ovsdb.converge_steps(api, spec, prev) if s.changes]
    out.changes += [f"linux: {c}" for c in linux.converge(conn, spec.ip_addresses, _address_scope(spec, prev))]
    if between is not None:
        between()
    index = index_of(bundle)
    if index is not None and index.managed_by == "lintas":
        with _libvirt(conn) as lv:
            for ch in D.converge(
                lv,
                index,
                bundle,
                allow_deletions=allow_deletions,
                shutdown_timeout_s=shutdown_timeout_s,
                parallelism=parallelism,
            ):
                out.changes += [f"domain {ch.name}: {a}" for a in ch.actions]
                out.restart_pending += [f"domain {ch.name}: {r}" for r in ch.restart_pending]
                if ch.kept:
                    out.kept.append(f"domain {ch.name}: {ch.kept}")
    return out


def restore(
    conn: HostConn,
    snap: HostSnapshot,
    applied: dict[str, str] | None,
    *,
    shutdown_timeout_s: float,
    timeout_s: float,
    parallelism: int = 4,
) -> list[str]:
    """Back to ``snap``; ``applied`` is the bundle the change applied (its keys get removed)."""
    spec = spec_of(applied) if applied else None
    done: list[str] = []
    with ovsdb.session(conn.ovsdb, timeout_s) as api:
        done += [f"ovs: {s.description}" for s in ovsdb.converge_steps(api, snap.ovs, spec) if s.changes]
    done += [f"linux: {c}" for c in linux.converge(conn, snap.ovs.ip_addresses, _address_scope(snap.ovs, spec))]
    if snap.domains:
        with _libvirt(conn) as lv:
            done += [
                f"domain {d}"
                for d in D.restore(lv, snap.domains, shutdown_timeout_s=shutdown_timeout_s, parallelism=parallelism)
            ]
    return done


def restored_differences(conn: HostConn, snap: HostSnapshot, timeout_s: float) -> list[str]:
    """What still differs from the snapshot after :func:`restore` (empty: restored)."""
    with ovsdb.session(conn.ovsdb, timeout_s) as api:
        obs = ovsdb.read(api)
    out = [d for d in ovsdb.differences(snap.ovs, obs) if "no longer modelled" not in d]
    out += linux.differences(conn, snap.ovs.ip_addresses)
    if snap.domains:
        with _libvirt(conn) as lv:
            seen = D.observe(lv, [s.uuid for s in snap.domains])
        for s in snap.domains:
            o = seen[s.uuid]
            if o.defined != s.existed:
                out.append(
                    f"domain {s.name or s.uuid}: {'defined' if o.defined else 'not defined'} "
                    f"(before: {'defined' if s.existed else 'not defined'})"
                )
            elif s.existed:
                assert s.xml is not None and o.inactive_xml is not None
                out += [f"domain {s.name}: {d}" for d in semantic_diff(s.xml, o.inactive_xml)]
                if o.active != s.active:
                    out.append(
                        f"domain {s.name}: {'running' if o.active else 'stopped'} "
                        f"(before: {'running' if s.active else 'stopped'})"
                    )
    return out


class _Observed(BaseModel):
    """One read of a host: OVSDB, the Linux side and the modelled (+ owned) domains."""

    model_config = ConfigDict(extra="forbid")

    ovs: ovsdb.ObservedOvs
    address_problems: list[str]
    domains: dict[str, D.DomainObservation] = {}
    extra_owned: list[str] = []
    uplink: list[P.ProbeAnswer | None] = []


def observe(
    conn: HostConn,
    bundle: dict[str, str],
    timeout_s: float,
    *,
    owned: bool = False,
    probes: Sequence[P.UplinkProbe] = (),
) -> _Observed:
    """The reads of a host at once (each is a network round trip of its own: OVSDB, SSH for the
    addresses, libvirt over SSH, SSH for the uplink ``probes``), so a host costs the slowest of
    them, not their sum."""
    spec, index = spec_of(bundle), index_of(bundle)

    def read_ovs() -> ovsdb.ObservedOvs:
        with ovsdb.session(conn.ovsdb, timeout_s) as api:
            return ovsdb.read(api)

    def read_domains() -> tuple[dict[str, D.DomainObservation], list[str]]:
        if index is None or (not index.domains and not owned):
            return {}, []
        with _libvirt(conn) as lv:
            seen = D.observe(lv, [d.uuid for d in index.domains])
            extra = (
                sorted(set(D.owned_domains(lv)) - {d.uuid for d in index.domains})
                if owned and index.managed_by == "lintas"
                else []
            )
        return seen, extra

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"host-{conn.name}") as pool:
        f_ovs = pool.submit(read_ovs)
        f_addr = pool.submit(linux.differences, conn, spec.ip_addresses)
        f_dom = pool.submit(read_domains)
        f_up = pool.submit(P.run, conn, list(probes), timeout_s=timeout_s)
        seen, extra = f_dom.result()
        return _Observed(
            ovs=f_ovs.result(),
            address_problems=f_addr.result(),
            domains=seen,
            extra_owned=extra,
            uplink=f_up.result(),
        )


def checks(
    conn: HostConn,
    bundle: dict[str, str],
    *,
    deletions_allowed: bool,
    timeout_s: float,
    probes: Sequence[P.UplinkProbe] = (),
) -> list[Check]:
    """Every check of one host; ``probes``: its uplink's (:mod:`workers.hosts.probes`), from the model."""
    spec, index = spec_of(bundle), index_of(bundle)
    seen = observe(conn, bundle, timeout_s, probes=probes)
    obs = seen.ovs
    name = conn.name
    out = [
        Check(device=name, check="ovs", subject=d, passed=False, expected="as modelled", observed=d)
        for d in ovsdb.differences(spec, obs)
    ]
    out += [
        Check(device=name, check="ovs-health", subject=d, passed=False, expected="working", observed=d)
        for d in ovsdb.health(spec, obs)
    ]
    if not out:
        n_ports = sum(len(b.ports) for b in spec.bridges)
        out.append(
            Check(
                device=name,
                check="ovs",
                subject=f"{len(spec.bridges)} bridges, {n_ports} ports",
                passed=True,
                expected="as modelled",
                observed="as modelled, MTUs applied",
            )
        )
    addr = seen.address_problems
    out.append(
        Check(
            device=name,
            check="address",
            subject=", ".join(f"{a.address} on {a.interface}" for a in spec.ip_addresses) or "none",
            passed=not addr,
            expected="present and up",
            observed="; ".join(addr) or "present and up",
        )
    )
    out += P.uplink_checks(name, list(probes), seen.uplink)
    if index is not None and index.domains:
        for c in D.check(index, seen.domains, obs, deletions_allowed=deletions_allowed):
            out.append(
                Check(
                    device=name,
                    check="domain",
                    subject=f"{c.domain} {c.subject}",
                    passed=c.passed,
                    expected=c.expected,
                    observed=c.observed,
                )
            )
    return out


def drift(conn: HostConn, bundle: dict[str, str], timeout_s: float) -> list[str]:
    spec, index = spec_of(bundle), index_of(bundle)
    seen = observe(conn, bundle, timeout_s, owned=True)
    out = [f"ovs: {d}" for d in ovsdb.differences(spec, seen.ovs)]
    out += [f"linux: {d}" for d in seen.address_problems]
    if index is not None:
        out += D.drift(index, bundle, seen.domains)
        out += [f"domain {u}: Lintas-managed but not in the last deployed state" for u in seen.extra_owned]
    return out
