"""Render the artifacts of one hypervisor host.

``render_host(model, name, renderer)`` returns ``{artifact name: text}``:

``ovs.json`` (every host)
    Desired OVS / OVN chassis state, :class:`~workers.render.ovs_schema.OvsSpec`
    as canonical JSON: ``br-int`` (``fail_mode=secure``) with one geneve port per
    peer for plain-geneve hosts, the uplink bridge holding the uplink NIC (MTU)
    and the tunnel endpoint address, provider bridges, and the OVN chassis keys
    in ``Open_vSwitch external_ids`` for OVN hosts.
``domains/<instance>.xml`` (kind ``kvm`` only, instances not ``absent``)
    libvirt domain XML from the ``libvirt/domain.xml.j2`` template (repo override
    allowed). Parsed back after rendering: it must be well-formed, carry no DTD and
    agree with the model on name, uuid, memory, vCPUs, MACs and bridges.
``domains.json`` (kind ``kvm``) / ``expected.json`` (kind ``openstack``)
    A :class:`DomainIndex`: every instance placed on the host with its desired
    power state (``running``/``stopped``/``absent``), flavor, memory, vCPUs and
    NICs. On ``kvm`` hosts it is what deploy drives (``xml`` names the domain
    artifact); on ``openstack`` hosts nova owns the domains and it is only what
    verify and drift compare against (:func:`check_domain`, matching by uuid).

No commit id, time or other run data goes into an artifact: equal input renders
byte-identical output, so artifacts are content-addressed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from lintas.engine.diagnostics import Diagnostic
from lintas.workers.model.model import Host, InfraModel
from lintas.workers.model.plain import plain
from lintas.workers.model.schema_hosts import FlavorSpec, InstanceSpec
from lintas.workers.render.domain import LINTAS_NS, DomainXmlError, domain_facts
from lintas.workers.render.domain_index import DomainIndex as DomainIndex
from lintas.workers.render.domain_index import ExpectedDomain, ExpectedFlavor, ExpectedNic, check_domain
from lintas.workers.render.domain_index import load_domain_index as load_domain_index
from lintas.workers.render.env import Renderer, RenderError, TemplateCall
from lintas.workers.render.inputs import TargetInput
from lintas.workers.render.ovs_schema import (
    MANAGED,
    Bridge,
    Interface,
    IpAddress,
    OpenVswitch,
    OvsSpec,
    Port,
    canonical_json,
)

DOMAIN_TEMPLATE = "libvirt/domain.xml.j2"
UPLINK_BRIDGE = "br-phy"  # when the host lists no provider bridge (OVS userspace-tunnelling convention)


@dataclass(frozen=True, slots=True)
class HostRenderOptions:
    """Rendering choices that are not part of the model (the lab sets them)."""

    domain_type: Literal["kvm", "qemu"] | None = None  # overrides every host's ``domain_type``
    datapath_type: Literal["system", "netdev"] | None = None  # overrides every host's ovs.datapath_type
    cpu_mode: Literal["host-model", "host-passthrough"] | None = "host-model"  # None: topology only
    machine: str | None = None  # e.g. "q35"; None lets libvirt choose its default
    instances_dir: str | None = None  # root/ephemeral/swap disks under <dir>/<uuid>/; None: no disks (lab)


# -- rendering ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DomainInput:
    instance: InstanceSpec
    flavor: FlavorSpec
    expected: ExpectedDomain


@dataclass(frozen=True, slots=True)
class HostInput:
    """Everything a host's artifacts are made of (``finish_host`` reads nothing else)."""

    host: Host
    peer_ips: tuple[tuple[str, str], ...]  # (peer, its tunnel IP) for each geneve/VXLAN peer
    domains: tuple[DomainInput, ...]  # every instance placed on the host, by name
    options: HostRenderOptions


def host_input(model: InfraModel, name: str, options: HostRenderOptions | None = None) -> TargetInput:
    """The input projection of host ``name``: the host, its peers' tunnel IPs, its instances
    with their flavors and expected domains, and the domain template calls."""
    opts = options or HostRenderOptions()
    host = model.hosts[name]
    peers = tuple((p, str(model.hosts[p].tunnel_ip.ip)) for p in host.peers) if host.tunnels is not None else ()
    domains = []
    for inst_name in sorted(model.instances_by_host.get(name, ())):
        inst = model.instances[inst_name]
        domains.append(DomainInput(inst, model.flavors[inst.flavor], expected_domain(model, host, inst)))
    data = HostInput(host, peers, tuple(domains), opts)
    if not host.owns_domains:
        return TargetInput(target=name, kind="host", calls=(), data=data, finish=finish_host)
    host_doc = {**plain(host), "owns_domains": host.owns_domains, "tunnel_ip": str(host.tunnel_ip)}
    calls = tuple(
        TemplateCall(
            DOMAIN_TEMPLATE,
            f"{host.name}/{d.instance.name}",
            {
                "d": domain_context(d.expected, d.instance, d.flavor, opts, host.domain_type),
                "instance": d.instance,
                "flavor": d.flavor,
                "host": host_doc,  # made plain when sent to the sandbox
            },
        )
        for d in data.domains
        if d.instance.state != "absent"
    )
    return TargetInput(target=name, kind="host", calls=calls, data=data, finish=finish_host)


def finish_host(inp: TargetInput, texts: Sequence[str]) -> dict[str, str]:
    """The artifacts of a host from its input and its rendered domain XML (never from the model)."""
    data: HostInput = inp.data
    host, opts = data.host, data.options
    try:
        out = {"ovs.json": ovs_spec(host, dict(data.peer_ips), opts).to_json()}
    except ValidationError as exc:
        raise RenderError(
            [
                Diagnostic(file="ovs.json", path=host.name, message=f"invalid OVS state: {e['msg']}")
                for e in exc.errors()
            ]
        ) from exc
    rendered = dict(zip((c.target for c in inp.calls), texts, strict=True))
    expected: list[ExpectedDomain] = []
    errors: list[Diagnostic] = []
    for d in data.domains:
        exp = d.expected
        target = f"{host.name}/{d.instance.name}"
        if target in rendered:
            artifact = f"domains/{d.instance.name}.xml"
            try:
                out[artifact] = _checked_domain(rendered[target], exp, target)
            except RenderError as exc:
                errors.extend(exc.diagnostics)
            exp = exp.model_copy(update={"xml": artifact})
        expected.append(exp)
    if errors:
        raise RenderError(errors)
    index = DomainIndex(
        host=host.name,
        kind=host.kind,
        managed_by="lintas" if host.owns_domains else "nova",
        domain_type=(opts.domain_type or host.domain_type) if host.owns_domains else None,
        domains=expected,
    )
    out["domains.json" if host.owns_domains else "expected.json"] = canonical_json(index.model_dump(mode="json"))
    return out


def render_host(
    model: InfraModel, name: str, renderer: Renderer, options: HostRenderOptions | None = None
) -> dict[str, str]:
    inp = host_input(model, name, options)
    return inp.finish(inp, renderer.render_many(inp.calls))


def ovs_spec(host: Host, peer_ips: Mapping[str, str], opts: HostRenderOptions) -> OvsSpec:
    datapath = opts.datapath_type or host.ovs.datapath_type
    integ = host.ovs.integration_bridge
    uplink_bridge = host.ovs.bridges[0] if host.ovs.bridges else UPLINK_BRIDGE
    mtu = host.uplink.mtu
    local_ip = str(host.tunnel_ip.ip)
    tunnels: list[Port] = []
    if host.tunnels is not None:
        for peer in sorted(host.peers, key=lambda p: ipaddress.ip_address(peer_ips[p])):
            remote = peer_ips[peer]
            options = {
                "remote_ip": remote,
                "local_ip": local_ip,
                "key": str(host.tunnels.key),
                "csum": "true" if host.tunnels.csum else "false",
            }
            port = tunnel_port_name(host.tunnels.type, remote)
            ids = {**MANAGED, "lintas-peer": peer}
            tunnels.append(
                Port(
                    name=port,
                    external_ids=ids,
                    interfaces=[Interface(name=port, type=host.tunnels.type, options=options, external_ids=ids)],
                )
            )
    bridges = [_bridge(integ, datapath, "secure", tunnels, other_config={"disable-in-band": "true"})]
    nic = Port(
        name=host.uplink.nic,
        external_ids={**MANAGED, "lintas-uplink": f"{host.uplink.leaf}:{host.uplink.port}"},
        interfaces=[Interface(name=host.uplink.nic, mtu_request=mtu, external_ids=MANAGED)],
    )
    for br in dict.fromkeys([uplink_bridge, *host.ovs.bridges]):
        is_uplink = br == uplink_bridge
        bridges.append(_bridge(br, datapath, "standalone", [nic] if is_uplink else [], mtu if is_uplink else None))
    return OvsSpec(
        host=host.name,
        connection=host.ovs.connection,
        open_vswitch=OpenVswitch(external_ids=_ovn_external_ids(host)),
        bridges=bridges,
        ip_addresses=[IpAddress(interface=uplink_bridge, address=str(host.tunnel_ip))],
    )


def _bridge(
    name: str,
    datapath: str,
    fail_mode: str,
    ports: list[Port],
    local_mtu: int | None = None,
    other_config: dict[str, str] | None = None,
) -> Bridge:
    local = Port(
        name=name,
        external_ids=MANAGED,
        interfaces=[Interface(name=name, type="internal", mtu_request=local_mtu, external_ids=MANAGED)],
    )
    return Bridge.model_validate(
        {
            "name": name,
            "datapath_type": datapath,
            "fail_mode": fail_mode,
            "other_config": other_config or {},
            "external_ids": MANAGED,
            "ports": [local, *ports],
        }
    )


def _ovn_external_ids(host: Host) -> dict[str, str]:
    ovn = host.ovn
    if ovn is None:
        return {}
    ids = {
        "system-id": ovn.system_id or host.name,
        "ovn-bridge": host.ovs.integration_bridge,
        "ovn-encap-type": ovn.encap_type,
        "ovn-encap-ip": str(ovn.encap_ip or host.tunnel_ip.ip),
        "ovn-remote": ovn.remote,
    }
    if ovn.bridge_mappings:
        ids["ovn-bridge-mappings"] = ",".join(f"{k}:{v}" for k, v in sorted(ovn.bridge_mappings.items()))
    return ids


def tunnel_port_name(kind: str, remote_ip: str) -> str:
    """``gnv-0a140015`` (neutron style: the remote IPv4 in hex; IPv6 hashed), within IFNAMSIZ."""
    prefix = "gnv" if kind == "geneve" else "vxl"
    addr = ipaddress.ip_address(remote_ip)
    suffix = f"{int(addr):08x}" if addr.version == 4 else hashlib.sha256(addr.packed).hexdigest()[:11]
    return f"{prefix}-{suffix}"


def port_id(inst: InstanceSpec, index: int) -> str:
    """The modelled port uuid, else one derived from the instance uuid (stable across renders)."""
    nic = inst.nics[index]
    if nic.port_id is not None:
        return str(nic.port_id)
    return str(uuidlib.uuid5(inst.uuid, f"lintas-nic-{index}"))


def nic_mtu(model: InfraModel, host: Host, network: str) -> int:
    """The guest MTU: what both the network and the host's overlay (uplink minus encapsulation) carry."""
    net = model.networks.get(network)
    return min(net.mtu, host.overlay_mtu) if net is not None else host.overlay_mtu


def expected_domain(model: InfraModel, host: Host, inst: InstanceSpec) -> ExpectedDomain:
    flavor = model.flavors[inst.flavor]
    nics = []
    for i, nic in enumerate(inst.nics):
        pid = port_id(inst, i) if host.owns_domains else (str(nic.port_id) if nic.port_id else None)
        nics.append(
            ExpectedNic(
                network=nic.network,
                mac=nic.mac,
                bridge=nic.bridge,
                model=nic.model,
                port_id=pid,
                target_dev=f"tap{pid[:11]}" if pid else None,
                mtu=nic_mtu(model, host, nic.network) if host.owns_domains else None,
            )
        )
    return ExpectedDomain(
        name=inst.name,
        uuid=str(inst.uuid),
        state=inst.state,
        project=inst.project,
        owner=inst.owner,
        flavor=ExpectedFlavor(
            name=flavor.name,
            vcpus=flavor.vcpus,
            ram_mib=flavor.ram_mib,
            disk_gb=flavor.disk_gb,
            swap_mib=flavor.swap_mib,
            ephemeral_gb=flavor.ephemeral_gb,
        ),
        memory_kib=flavor.ram_mib * 1024,
        vcpus=flavor.vcpus,
        nics=nics,
    )


def domain_context(
    exp: ExpectedDomain, inst: InstanceSpec, flavor: FlavorSpec, opts: HostRenderOptions, host_type: str = "kvm"
) -> dict[str, Any]:
    """The prepared values the domain template reads as ``d``."""
    dtype = opts.domain_type or host_type
    disks: list[dict[str, str]] = []
    if opts.instances_dir is not None:
        base = f"{opts.instances_dir.rstrip('/')}/{inst.uuid}"
        sizes = (("disk", flavor.disk_gb), ("disk.eph0", flavor.ephemeral_gb), ("disk.swap", flavor.swap_mib))
        for file, size in sizes:
            if size:
                disks.append({"path": f"{base}/{file}", "format": "qcow2", "target": f"vd{'abcdefgh'[len(disks)]}"})
    return {
        "type": dtype,
        "ns": LINTAS_NS,
        "name": inst.name,
        "uuid": str(inst.uuid),
        "description": inst.description,
        "flavor": exp.flavor.model_dump(),
        "extra_specs": sorted(flavor.extra_specs.items()),
        "owner": inst.owner,
        "project": inst.project,
        "image": inst.image,
        "memory_kib": exp.memory_kib,
        "vcpus": exp.vcpus,
        "shares": exp.vcpus * 1024,
        "cpuset": None,
        "cpu_mode": opts.cpu_mode if dtype == "kvm" else None,  # TCG: a named model, not the host's
        "machine": opts.machine,
        "disks": disks,
        "nics": [n.model_dump() for n in exp.nics],
    }


def _checked_domain(xml: str, exp: ExpectedDomain, target: str) -> str:
    """A rendered domain, checked: well-formed, no DTD, and in agreement with ``exp``."""
    try:
        facts = domain_facts(xml, source=f"{DOMAIN_TEMPLATE} ({target})")
    except DomainXmlError as exc:
        raise RenderError(exc.diagnostics) from exc
    problems = check_domain(exp, facts)
    if problems:
        raise RenderError(
            [
                Diagnostic(file=DOMAIN_TEMPLATE, path=target, message=f"rendered domain disagrees with the model: {p}")
                for p in problems
            ]
        )
    return xml
