"""A host's Open vSwitch database: read it, compare it with ``ovs.json``, converge it.

Everything goes through the OVSDB protocol (ovsdbapp's IDL), never ``ovs-vsctl``:

- :func:`read` takes a snapshot of the bridges, ports, interfaces and the root row;
- :func:`differences` lists what the database gets wrong against a spec (verify, drift);
- :func:`health` lists interfaces that exist but do not work (``error``, no ofport, the
  MTU not applied) and OVN bridge mappings that name a missing bridge;
- :func:`converge` changes the database to a spec in **one transaction** (atomic: the
  host gets all of it or none of it), waiting until ovs-vswitchd has applied it;
- :func:`snapshot` is the part of the current state a spec touches, as a spec: what
  rollback restores.

Ownership (see :mod:`workers.render.ovs_schema`): rows marked
``external_ids:lintas-managed=true`` are Lintas's; a managed row the target no longer lists
is removed. Map columns are merged: only the keys the target lists are set, and keys the
*previous* spec set but the target no longer lists are removed, so keys written by others
(ovn-controller, neutron, os-vif) survive. A managed interface's ``options`` are owned
whole. A bridge that still carries someone else's ports is never removed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from lintas.workers.hosts.ovs_commands import (
    AddBridge,
    AddPort,
    DelBridge,
    DelPort,
    Keep,
    RemoveKeys,
    SetColumn,
    Step,
)
from lintas.workers.render.ovs_schema import (
    MANAGED_KEY,
    Bridge,
    Interface,
    IpAddress,
    OpenVswitch,
    OvsSpec,
    Port,
    interface_type,
)

SCHEMA = "Open_vSwitch"
T = TypeVar("T")


class OvsdbError(RuntimeError):
    """The OVSDB server cannot be reached, or a transaction was refused."""


class _Obs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObservedInterface(_Obs):
    name: str
    type: str
    options: dict[str, str] = {}
    mtu_request: int | None = None
    mtu: int | None = None
    external_ids: dict[str, str] = {}
    ofport: int | None = None
    error: str | None = None
    link_state: str | None = None


class ObservedPort(_Obs):
    name: str
    tag: int | None = None
    trunks: list[int] = []
    external_ids: dict[str, str] = {}
    interfaces: list[ObservedInterface] = []


class ObservedBridge(_Obs):
    name: str
    datapath_type: str = ""
    fail_mode: str | None = None
    other_config: dict[str, str] = {}
    external_ids: dict[str, str] = {}
    ports: dict[str, ObservedPort] = {}


class ObservedOvs(_Obs):
    external_ids: dict[str, str] = {}
    other_config: dict[str, str] = {}
    bridges: dict[str, ObservedBridge] = {}

    def port_bridge(self) -> dict[str, str]:
        """``{port name: bridge name}``."""
        return {p: b.name for b in self.bridges.values() for p in b.ports}

    def interfaces(self) -> dict[str, tuple[str, ObservedInterface]]:
        return {i.name: (b.name, i) for b in self.bridges.values() for p in b.ports.values() for i in p.interfaces}


# -- connection ---------------------------------------------------------------------


def _with_deadline(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    """``fn()`` in a daemon thread, given up after ``timeout_s``: ovsdbapp's schema fetch
    (``transact_block``) has no timeout of its own and waits forever on a silent server."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    t = threading.Thread(target=run, name="ovsdb-connect", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise TimeoutError(f"no answer after {timeout_s:g} s {what}")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


@contextmanager
def session(target: str, timeout_s: float = 15.0) -> Iterator[Any]:
    """An ovsdbapp ``Open_vSwitch`` API on ``target`` (``tcp:``, ``ssl:`` or ``unix:``), closed on exit."""
    from ovsdbapp.backend.ovs_idl import connection
    from ovsdbapp.schema.open_vswitch import impl_idl

    try:
        idl = _with_deadline(
            lambda: connection.OvsdbIdl.from_server(target, SCHEMA), timeout_s, f"fetching the schema from {target}"
        )
        conn = connection.Connection(idl, timeout=timeout_s)
        # ovsdbapp keeps the connection on the *class* (first one wins, for every later
        # instance): a class of its own per session, or every host would talk to the first
        api_class = type("HostOvsdbIdl", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
        api = api_class(conn)
    except Exception as exc:  # noqa: BLE001 - ovsdbapp raises bare Exception / TimeoutException
        raise OvsdbError(f"OVSDB {target}: cannot connect: {exc or type(exc).__name__}") from exc
    try:
        yield api
    finally:
        conn.stop(timeout=5)


# -- reading --------------------------------------------------------------------------


def _opt(value: Any) -> Any:
    """An optional OVSDB column reads as ``[]`` or ``[v]``."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(value or {}).items()}


def read(api: Any) -> ObservedOvs:
    """The whole switch as the IDL holds it (the IDL is a synchronised replica)."""
    bridges: dict[str, ObservedBridge] = {}
    for br in api.tables["Bridge"].rows.values():
        ports: dict[str, ObservedPort] = {}
        for p in br.ports:
            ifaces = [
                ObservedInterface(
                    name=i.name,
                    type=interface_type(i.type),
                    options=_map(i.options),
                    mtu_request=_opt(i.mtu_request),
                    mtu=_opt(i.mtu),
                    external_ids=_map(i.external_ids),
                    ofport=_opt(i.ofport),
                    error=_opt(i.error),
                    link_state=_opt(i.link_state),
                )
                for i in p.interfaces
            ]
            ports[p.name] = ObservedPort(
                name=p.name,
                tag=_opt(p.tag),
                trunks=sorted(p.trunks),
                external_ids=_map(p.external_ids),
                interfaces=sorted(ifaces, key=lambda i: i.name),
            )
        bridges[br.name] = ObservedBridge(
            name=br.name,
            datapath_type=br.datapath_type,
            fail_mode=_opt(br.fail_mode),
            other_config=_map(br.other_config),
            external_ids=_map(br.external_ids),
            ports=ports,
        )
    roots = list(api.tables["Open_vSwitch"].rows.values())
    root = roots[0] if roots else None
    return ObservedOvs(
        external_ids=_map(root.external_ids) if root else {},
        other_config=_map(root.other_config) if root else {},
        bridges=bridges,
    )


def _managed(ids: Mapping[str, str]) -> bool:
    return ids.get(MANAGED_KEY) == "true"


# -- comparing ------------------------------------------------------------------------


def _map_diff(what: str, want: Mapping[str, str], have: Mapping[str, str]) -> list[str]:
    out = []
    for k in sorted(want):
        if k not in have:
            out.append(f"{what}:{k} missing (want {want[k]!r})")
        elif have[k] != want[k]:
            out.append(f"{what}:{k}: want {want[k]!r}, have {have[k]!r}")
    return out


def _datapath(value: str) -> str:
    return value or "system"


def differences(spec: OvsSpec, obs: ObservedOvs) -> list[str]:
    """What the database gets wrong against ``spec``: one line per difference, exact."""
    out = _map_diff("Open_vSwitch external_ids", spec.open_vswitch.external_ids, obs.external_ids)
    out += _map_diff("Open_vSwitch other_config", spec.open_vswitch.other_config, obs.other_config)
    where = obs.port_bridge()
    wanted_ports = {p.name for b in spec.bridges for p in b.ports}
    for b in spec.bridges:
        have = obs.bridges.get(b.name)
        if have is None:
            out.append(f"bridge {b.name} missing")
            continue
        if _datapath(have.datapath_type) != b.datapath_type:
            out.append(f"bridge {b.name} datapath_type: want {b.datapath_type}, have {_datapath(have.datapath_type)}")
        if b.fail_mode != have.fail_mode:
            out.append(f"bridge {b.name} fail_mode: want {b.fail_mode}, have {have.fail_mode}")
        out += _map_diff(f"bridge {b.name} other_config", b.other_config, have.other_config)
        out += _map_diff(f"bridge {b.name} external_ids", b.external_ids, have.external_ids)
        for p in b.ports:
            hp = have.ports.get(p.name)
            if hp is None:
                elsewhere = where.get(p.name)
                out.append(
                    f"bridge {b.name}: port {p.name} missing" + (f" (it is on {elsewhere})" if elsewhere else "")
                )
                continue
            out += _port_diff(b.name, p, hp)
        for name, hp in sorted(have.ports.items()):
            if name not in wanted_ports and _managed(hp.external_ids):
                out.append(f"bridge {b.name}: port {name} is Lintas-managed but no longer modelled")
    spec_bridges = {b.name for b in spec.bridges}
    for name, hb in sorted(obs.bridges.items()):
        if name not in spec_bridges and _managed(hb.external_ids):
            out.append(f"bridge {name} is Lintas-managed but no longer modelled")
    return out


def _port_diff(bridge: str, p: Port, hp: ObservedPort) -> list[str]:
    at = f"bridge {bridge} port {p.name}"
    out = []
    if p.tag != hp.tag:
        out.append(f"{at} tag: want {p.tag}, have {hp.tag}")
    if sorted(p.trunks) != hp.trunks:
        out.append(f"{at} trunks: want {sorted(p.trunks)}, have {hp.trunks}")
    out += _map_diff(f"{at} external_ids", p.external_ids, hp.external_ids)
    have_ifaces = {i.name: i for i in hp.interfaces}
    for i in p.interfaces:
        hi = have_ifaces.get(i.name)
        if hi is None:
            out.append(f"{at}: interface {i.name} missing")
            continue
        ai = f"interface {i.name}"
        if i.type != hi.type:
            out.append(f"{ai} type: want {i.type}, have {hi.type}")
        if i.options != hi.options:
            out.append(f"{ai} options: want {_kv(i.options)}, have {_kv(hi.options)}")
        if i.mtu_request != hi.mtu_request:
            out.append(f"{ai} mtu_request: want {i.mtu_request}, have {hi.mtu_request}")
        out += _map_diff(f"{ai} external_ids", i.external_ids, hi.external_ids)
    return out


def _kv(m: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(m.items())) + "}"


def health(spec: OvsSpec, obs: ObservedOvs) -> list[str]:
    """Modelled interfaces that exist but do not work, and OVN mappings to missing bridges."""
    out = []
    ifaces = obs.interfaces()
    for name, (_bridge, want) in sorted(spec.interfaces().items()):
        if name not in ifaces:
            continue  # reported by differences()
        got = ifaces[name][1]
        if got.error:
            out.append(f"interface {name}: error {got.error!r}")
        if got.ofport is None or got.ofport < 0:
            out.append(f"interface {name}: no OpenFlow port (ofport {got.ofport})")
        if want.mtu_request is not None and got.mtu != want.mtu_request:
            out.append(f"interface {name} mtu: want {want.mtu_request}, have {got.mtu}")
    mappings = spec.open_vswitch.external_ids.get("ovn-bridge-mappings", "")
    for item in filter(None, mappings.split(",")):
        physnet, _, bridge = item.partition(":")
        if bridge not in obs.bridges:
            out.append(f"ovn-bridge-mappings {physnet}:{bridge}: bridge {bridge} does not exist")
    integ = spec.open_vswitch.external_ids.get("ovn-bridge")
    if integ and integ not in obs.bridges:
        out.append(f"ovn-bridge {integ}: bridge does not exist")
    return out


# -- snapshot (what rollback restores) --------------------------------------------------


def snapshot(obs: ObservedOvs, spec: OvsSpec, previous: OvsSpec | None, addresses: list[IpAddress]) -> OvsSpec:
    """The rows and keys that converging to ``spec`` may change, as they are now.

    Restoring it with :func:`converge` (``previous=spec``) undoes the change: rows the
    change created are managed and absent here, so they are removed; keys it set are
    absent here, so they are removed; everything else gets its old values back.
    """
    touched = {b.name for b in spec.bridges} | {b.name for b in (previous.bridges if previous else [])}
    spec_ports = {p.name for b in spec.bridges for p in b.ports}
    root_keys = set(spec.open_vswitch.external_ids) | set(previous.open_vswitch.external_ids if previous else {})
    other_keys = set(spec.open_vswitch.other_config) | set(previous.open_vswitch.other_config if previous else {})
    bridges = []
    for name, hb in sorted(obs.bridges.items()):
        if name not in touched and not _managed(hb.external_ids):
            continue
        ports = [
            Port(
                name=hp.name,
                tag=hp.tag,
                trunks=hp.trunks,
                external_ids=hp.external_ids,
                interfaces=[
                    Interface(
                        name=i.name,
                        type=i.type,
                        options=i.options,
                        mtu_request=i.mtu_request,
                        external_ids=i.external_ids,
                    )
                    for i in hp.interfaces
                ],
            )
            for hp in hb.ports.values()
            if hp.name in spec_ports or _managed(hp.external_ids) or hp.name == name
        ]
        bridges.append(
            Bridge(
                name=name,
                datapath_type=_datapath(hb.datapath_type),
                fail_mode=hb.fail_mode,
                other_config=hb.other_config,
                external_ids=hb.external_ids,
                ports=sorted(ports, key=lambda p: p.name),
            )
        )
    return OvsSpec(
        host=spec.host,
        connection=spec.connection,
        open_vswitch=OpenVswitch(
            external_ids={k: v for k, v in obs.external_ids.items() if k in root_keys},
            other_config={k: v for k, v in obs.other_config.items() if k in other_keys},
        ),
        bridges=bridges,
        ip_addresses=addresses,
    )


# -- converging -----------------------------------------------------------------------


def plan(spec: OvsSpec, obs: ObservedOvs, previous: OvsSpec | None) -> list[Step]:  # noqa: C901 - removals, then bridges, ports and interfaces, in OVSDB's order
    """The changes that take ``obs`` to ``spec``: a :class:`~workers.hosts.ovs_commands.Step` each."""
    steps: list[Step] = []
    prev_bridges = {b.name: b for b in (previous.bridges if previous else [])}
    prev_ifaces = previous.interfaces() if previous else {}
    prev_ports = {p.name: p for b in (previous.bridges if previous else []) for p in b.ports}
    where = obs.port_bridge()
    spec_bridges = {b.name for b in spec.bridges}
    spec_ports = {p.name: b.name for b in spec.bridges for p in b.ports}

    # removals first: managed rows no longer listed (never a foreign port, never a bridge with one)
    for name, hb in sorted(obs.bridges.items()):
        for pname, hp in sorted(hb.ports.items()):
            if pname == name or not _managed(hp.external_ids):
                continue
            if spec_ports.get(pname) != name:
                steps.append(Step(f"del port {pname} from {name}", DelPort(pname, name)))
        if name not in spec_bridges and _managed(hb.external_ids):
            foreign = [p for p, hp in hb.ports.items() if p != name and not _managed(hp.external_ids)]
            if foreign:
                steps.append(Step(f"keep bridge {name}: it still carries {', '.join(sorted(foreign))}", Keep()))
            else:
                steps.append(Step(f"del bridge {name}", DelBridge(name)))

    root = spec.open_vswitch
    prev_root = previous.open_vswitch if previous else OpenVswitch()
    steps += _map_steps(
        "Open_vSwitch", ".", "external_ids", root.external_ids, obs.external_ids, prev_root.external_ids
    )
    steps += _map_steps(
        "Open_vSwitch", ".", "other_config", root.other_config, obs.other_config, prev_root.other_config
    )

    for b in spec.bridges:
        found = obs.bridges.get(b.name)
        pb = prev_bridges.get(b.name)
        if found is None:
            steps.append(Step(f"add bridge {b.name} ({b.datapath_type})", AddBridge(b.name, b.datapath_type)))
            hb = ObservedBridge(
                name=b.name,
                datapath_type=b.datapath_type,
                ports={b.name: ObservedPort(name=b.name, interfaces=[ObservedInterface(name=b.name, type="internal")])},
            )
        else:
            hb = found
        if _datapath(hb.datapath_type) != b.datapath_type:
            steps.append(
                Step(
                    f"bridge {b.name} datapath_type {b.datapath_type}",
                    SetColumn("Bridge", b.name, "datapath_type", b.datapath_type),
                )
            )
        if hb.fail_mode != b.fail_mode:
            fail: Any = b.fail_mode if b.fail_mode is not None else []
            steps.append(
                Step(f"bridge {b.name} fail_mode {b.fail_mode}", SetColumn("Bridge", b.name, "fail_mode", fail))
            )
        steps += _map_steps(
            "Bridge", b.name, "other_config", b.other_config, hb.other_config, pb.other_config if pb else {}
        )
        steps += _map_steps(
            "Bridge", b.name, "external_ids", b.external_ids, hb.external_ids, pb.external_ids if pb else {}
        )
        for p in b.ports:
            if len(p.interfaces) != 1 or p.interfaces[0].name != p.name:
                raise OvsdbError(
                    f"bridge {b.name} port {p.name}: only single-interface ports of the same name "
                    "are supported (no bonds)"
                )
            hp_found = hb.ports.get(p.name)
            if hp_found is None and p.name != b.name:
                if p.name in where:
                    steps.append(
                        Step(f"move port {p.name} from {where[p.name]} to {b.name}", DelPort(p.name, where[p.name]))
                    )
                steps.append(Step(f"add port {p.name} to {b.name}", AddPort(b.name, p.name)))
                hp = ObservedPort(name=p.name, interfaces=[ObservedInterface(name=p.name, type="system")])
            elif hp_found is None:
                hp = ObservedPort(name=p.name, interfaces=[ObservedInterface(name=p.name, type="internal")])
            else:
                hp = hp_found
            pp = prev_ports.get(p.name)
            if hp.tag != p.tag:
                steps.append(
                    Step(
                        f"port {p.name} tag {p.tag}",
                        SetColumn("Port", p.name, "tag", p.tag if p.tag is not None else []),
                    )
                )
            if hp.trunks != sorted(p.trunks):
                steps.append(
                    Step(
                        f"port {p.name} trunks {sorted(p.trunks)}",
                        SetColumn("Port", p.name, "trunks", sorted(p.trunks)),
                    )
                )
            steps += _map_steps(
                "Port", p.name, "external_ids", p.external_ids, hp.external_ids, pp.external_ids if pp else {}
            )
            i = p.interfaces[0]
            hi = hp.interfaces[0] if hp.interfaces else ObservedInterface(name=i.name, type="system")
            pi = prev_ifaces.get(i.name, (None, None))[1]
            want_type = "" if i.type == "system" else i.type
            if hi.type != i.type:
                steps.append(
                    Step(f"interface {i.name} type {i.type}", SetColumn("Interface", i.name, "type", want_type))
                )
            if hi.options != i.options:
                gone = sorted(set(hi.options) - set(i.options))
                if gone:
                    steps.append(
                        Step(
                            f"interface {i.name} options remove {', '.join(gone)}",
                            RemoveKeys("Interface", i.name, "options", tuple(gone)),
                        )
                    )
                if i.options:
                    steps.append(
                        Step(
                            f"interface {i.name} options {_kv(i.options)}",
                            SetColumn("Interface", i.name, "options", dict(i.options)),
                        )
                    )
            if hi.mtu_request != i.mtu_request:
                mtu: Any = i.mtu_request if i.mtu_request is not None else []
                steps.append(
                    Step(
                        f"interface {i.name} mtu_request {i.mtu_request}",
                        SetColumn("Interface", i.name, "mtu_request", mtu),
                    )
                )
            steps += _map_steps(
                "Interface", i.name, "external_ids", i.external_ids, hi.external_ids, pi.external_ids if pi else {}
            )
    return steps


def _map_steps(
    table: str, record: str, column: str, want: Mapping[str, str], have: Mapping[str, str], before: Mapping[str, str]
) -> list[Step]:
    what = f"{table} {record if record != '.' else ''}".strip()
    steps: list[Step] = []
    gone = sorted(k for k in before if k not in want and k in have)
    if gone:
        steps.append(Step(f"{what} {column} remove {', '.join(gone)}", RemoveKeys(table, record, column, tuple(gone))))
    changed = {k: v for k, v in want.items() if have.get(k) != v}
    if changed:
        steps.append(Step(f"{what} {column} {_kv(changed)}", SetColumn(table, record, column, changed)))
    return steps


def converge(api: Any, spec: OvsSpec, previous: OvsSpec | None) -> list[str]:
    """Take the database to ``spec`` in one transaction; returns each step's description (empty: nothing)."""
    return [s.description for s in converge_steps(api, spec, previous)]


def converge_steps(api: Any, spec: OvsSpec, previous: OvsSpec | None) -> list[Step]:
    """:func:`converge`, returning the steps themselves (``step.changes``: not a :class:`Keep`)."""
    steps = plan(spec, read(api), previous)
    real = [s for s in steps if s.changes]
    if not real:
        return steps
    try:
        with api.transaction(check_error=True) as txn:
            for step in real:
                txn.add(step.command.command(api))
    except Exception as exc:  # noqa: BLE001 - ovsdbapp raises RuntimeError/TimeoutException/...
        raise OvsdbError(f"OVSDB transaction refused, nothing applied: {exc or type(exc).__name__}") from exc
    return steps
