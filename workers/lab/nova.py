"""The lab's nova (and neutron) on every ``openstack``-kind host: domains Lintas does not own.

On a real compute node nova defines the libvirt domains and neutron's agent creates the
integration bridge; Lintas only compares what runs with ``instances.yaml``. The lab plays
both, once the host's daemons are up:

* the host's OVS gets ``br-int`` (``datapath_type=netdev``; and any other bridge a
  modelled NIC of the host names) through ``ovs-vsctl``, only when missing and without
  Lintas's ``external_ids``, as neutron would leave it;
* each instance the model places on the host (state not ``absent``) is defined with
  nova-style XML (``instance-%08x``, ``nova:instance`` metadata, OVS virtualport
  interfaces ``tap<port id[:11]>``, no disks) and started when its state is ``running``.
  A domain that exists (by uuid) is left as it is, so drift a test made survives ``up``.

Tests play nova behind Lintas's back with :func:`nova_set_mac` and read the host with
:func:`nova_domains`. Everything goes through libvirt-python on the host's own socket
(``qemu:///system?socket=/run/lintas-lab/lx-<host>/libvirt-run/libvirt-sock``).
"""

from __future__ import annotations

import asyncio
import importlib
import re
import uuid
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from lintas.engine.settings import Settings
from lintas.workers.lab.cmd import LabError, Tools, run
from lintas.workers.lab.hypervisor import domain_type
from lintas.workers.lab.paths import LabPaths
from lintas.workers.lab.topology import HostPlan
from lintas.workers.model.model import InfraModel
from lintas.workers.model.schema_hosts import InstanceSpec
from lintas.workers.render.hosts import port_id as render_port_id

NOVA_NS = "http://openstack.org/xmlns/libvirt/nova/1.1"
INTEGRATION_BRIDGE = "br-int"
_STATES = {
    0: "nostate",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutdown",
    5: "shutoff",
    6: "crashed",
    7: "pmsuspended",
}
_INTERFACE = re.compile(r"<interface\b.*?</interface>", re.DOTALL)
_MAC = re.compile(r"<mac address=(['\"])[0-9A-Fa-f:]+\1")
_MAC_VALUE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def _libvirt() -> Any:
    libvirt: Any = importlib.import_module("libvirt")  # untyped; imported only when a host is used
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors are raised, not printed
    return libvirt


def instance_name(index: int) -> str:
    """nova's libvirt name for the instance with database id ``index``."""
    return f"instance-{index:08x}"


def port_id(instance: InstanceSpec, index: int) -> str:
    """The neutron port of NIC ``index``: the modelled ``port_id``, else a stable uuid (the renderer's)."""
    return render_port_id(instance, index)


def nova_instances(model: InfraModel, host: str) -> list[tuple[str, InstanceSpec]]:
    """``(libvirt name, instance)`` of every instance nova runs on ``host``.

    The name's number is the instance's 1-based position among all modelled instances in
    uuid order, standing in for nova's database id (stable while the model's uuids are).
    """
    ids = {i.uuid: n for n, i in enumerate(sorted(model.instances.values(), key=lambda i: str(i.uuid)), start=1)}
    return [
        (instance_name(ids[i.uuid]), i)
        for i in sorted(model.instances.values(), key=lambda i: str(i.uuid))
        if i.host == host and i.state != "absent"
    ]


def domain_xml(model: InfraModel, name: str, instance: InstanceSpec, dom_type: str) -> str:
    """A domain as nova defines it (the parts :func:`workers.render.domain.domain_facts` reads)."""
    flavor = model.flavors[instance.flavor]
    nics = []
    for i, nic in enumerate(instance.nics):
        pid = port_id(instance, i)
        nics.append(f"""    <interface type='bridge'>
      <mac address={quoteattr(nic.mac)}/>
      <source bridge={quoteattr(nic.bridge)}/>
      <virtualport type='openvswitch'>
        <parameters interfaceid={quoteattr(pid)}/>
      </virtualport>
      <target dev={quoteattr("tap" + pid[:11])}/>
      <model type={quoteattr(nic.model)}/>
      <rom enabled='no'/>
    </interface>
""")
    u = str(instance.uuid)
    return f"""<domain type={quoteattr(dom_type)}>
  <name>{escape(name)}</name>
  <uuid>{u}</uuid>
  <metadata>
    <nova:instance xmlns:nova="{NOVA_NS}">
      <nova:package version="lintas-lab"/>
      <nova:name>{escape(instance.name)}</nova:name>
      <nova:flavor name={quoteattr(flavor.name)}>
        <nova:memory>{flavor.ram_mib}</nova:memory>
        <nova:disk>{flavor.disk_gb}</nova:disk>
        <nova:swap>{flavor.swap_mib}</nova:swap>
        <nova:ephemeral>{flavor.ephemeral_gb}</nova:ephemeral>
        <nova:vcpus>{flavor.vcpus}</nova:vcpus>
      </nova:flavor>
      <nova:owner>
        <nova:user>{escape(instance.owner)}</nova:user>
        <nova:project>{escape(instance.project)}</nova:project>
      </nova:owner>
    </nova:instance>
  </metadata>
  <memory unit='MiB'>{flavor.ram_mib}</memory>
  <currentMemory unit='MiB'>{flavor.ram_mib}</currentMemory>
  <vcpu placement='static'>{flavor.vcpus}</vcpu>
  <sysinfo type='smbios'>
    <system>
      <entry name='manufacturer'>OpenStack Foundation</entry>
      <entry name='product'>OpenStack Nova</entry>
      <entry name='serial'>{u}</entry>
      <entry name='uuid'>{u}</entry>
      <entry name='family'>Virtual Machine</entry>
    </system>
  </sysinfo>
  <os>
    <type arch='x86_64'>hvm</type>
    <boot dev='hd'/>
    <smbios mode='sysinfo'/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
{"".join(nics)}    <serial type='pty'>
      <target port='0'/>
    </serial>
    <memballoon model='virtio'>
      <stats period='10'/>
    </memballoon>
  </devices>
</domain>
"""


async def ensure_bridges(tools: Tools, paths: LabPaths, host: str, bridges: list[str]) -> list[str]:
    """Create each missing bridge (netdev datapath) in the host's OVS; returns those created."""
    db = f"--db=unix:{paths.ovs_db_socket(host)}"
    created = []
    for br in bridges:
        exists = await run([tools.ovs_vsctl, db, "br-exists", br], check=False)
        if exists.returncode == 0:
            continue
        await run(
            [tools.ovs_vsctl, db, "--timeout=20", "add-br", br, "--", "set", "Bridge", br, "datapath_type=netdev"],
            timeout=30,
        )
        created.append(br)
    return created


def _ensure_domains(uri: str, wanted: list[tuple[str, str, bool]]) -> list[str]:
    lv = _libvirt()
    conn = lv.open(uri)
    made: list[str] = []
    try:
        for uid, xml, start in wanted:
            try:
                conn.lookupByUUIDString(uid)
                continue  # nova's domain exists: left as it is
            except lv.libvirtError as exc:
                if exc.get_error_code() != lv.VIR_ERR_NO_DOMAIN:
                    raise
            dom = conn.defineXML(xml)
            if start:
                dom.create()
            made.append(dom.name())
    finally:
        conn.close()
    return made


async def ensure_nova(tools: Tools, paths: LabPaths, model: InfraModel, host: HostPlan) -> list[str]:
    """br-int and the host's nova domains (defined, started when running); returns the domains made."""
    instances = nova_instances(model, host.name)
    bridges = [INTEGRATION_BRIDGE] + sorted({n.bridge for _, i in instances for n in i.nics} - {INTEGRATION_BRIDGE})
    await ensure_bridges(tools, paths, host.name, bridges)
    # the host's modelled hypervisor type (nova's virt_type), TCG where this machine has no usable KVM
    dom_type = host.domain_type if domain_type() == "kvm" else "qemu"
    wanted = [(str(i.uuid), domain_xml(model, name, i, dom_type), i.state == "running") for name, i in instances]
    lv = _libvirt()
    try:
        return await asyncio.to_thread(_ensure_domains, paths.libvirt_uri(host.name), wanted)
    except lv.libvirtError as exc:
        raise LabError(
            f"{host.name}: nova domains: {exc} (libvirt log: {paths.host_dir(host.name, '/var/log/libvirt')})"
        ) from exc


# -- playing nova behind Lintas's back (tests) -------------------------------------------------


def _open(settings: Settings, host: str) -> Any:
    paths = LabPaths(settings.home)
    sock = paths.libvirt_socket(host)
    if not Path(sock).exists():
        raise LabError(f"{host} is not a running lab host (no {sock})")
    return _libvirt().open(paths.libvirt_uri(host))


def nova_domains(settings: Settings, host: str) -> list[tuple[str, str, str]]:
    """``(name, uuid, state)`` of every domain on a lab host, by name; state as libvirt says
    it: ``running``, ``shutoff``, ``paused``, ..."""
    conn = _open(settings, host)
    try:
        out = [(d.name(), d.UUIDString(), _STATES.get(d.state()[0], "nostate")) for d in conn.listAllDomains(0)]
    finally:
        conn.close()
    return sorted(out)


def nova_set_mac(settings: Settings, host: str, instance_uuid: str | uuid.UUID, nic_index: int, new_mac: str) -> None:
    """Change NIC ``nic_index``'s MAC in the persistent definition, as an operator using nova or
    virsh would; a running domain is destroyed and started so the live one has it too."""
    mac = new_mac.lower()
    if not _MAC_VALUE.fullmatch(mac):
        raise LabError(f"{new_mac!r} is not a MAC address")
    lv = _libvirt()
    conn = _open(settings, host)
    try:
        dom = conn.lookupByUUIDString(str(instance_uuid))
        xml = dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE)
        interfaces = list(_INTERFACE.finditer(xml))
        if not 0 <= nic_index < len(interfaces):
            raise LabError(f"{host}: domain {instance_uuid} has {len(interfaces)} interfaces, no nics[{nic_index}]")
        m = interfaces[nic_index]
        block, n = _MAC.subn(f"<mac address='{mac}'", m.group(0), count=1)
        if n != 1:
            raise LabError(f"{host}: domain {instance_uuid} nics[{nic_index}] has no <mac address>")
        conn.defineXML(xml[: m.start()] + block + xml[m.end() :])
        if dom.isActive():
            dom.destroy()
            dom.create()
    finally:
        conn.close()
