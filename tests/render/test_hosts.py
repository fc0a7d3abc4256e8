"""Hypervisor rendering: ovs.json, libvirt domain XML, domains.json / expected.json,
and the semantic reading of domain XML (facts, diff, model check)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from lintas.workers.model import InfraModel, load_model
from lintas.workers.model.generate import generate_fabric
from lintas.workers.model.loader import load_model_texts
from lintas.workers.render.domain import DomainXmlError, domain_facts, semantic_diff
from lintas.workers.render.env import Renderer, RenderError
from lintas.workers.render.hosts import HostRenderOptions, check_domain, load_domain_index, render_host
from lintas.workers.render.ovs_schema import MANAGED_KEY, load_ovs_spec

TEMPLATE = Path(__file__).resolve().parents[2] / "gitops-repo-template"
GOLDEN = Path(__file__).resolve().parent / "golden" / "hosts"
KVM, OSC = "kvm-uat-01", "osc-01"

NOVA_XML = """<domain type="kvm">
  <name>instance-0000002a</name>
  <uuid>9b2d4f10-1c0e-4d7a-8f3e-6a5b4c3d2e01</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:package version="27.1.0"/>
      <nova:name>corebank-uat-01</nova:name>
      <nova:creationTime>2024-05-02 10:11:12</nova:creationTime>
      <nova:flavor name="m1.tiny3.migrate">
        <nova:memory>8192</nova:memory><nova:disk>80</nova:disk><nova:swap>0</nova:swap>
        <nova:ephemeral>0</nova:ephemeral><nova:vcpus>2</nova:vcpus>
      </nova:flavor>
      <nova:owner>
        <nova:user uuid="0b9f">team-core-banking</nova:user>
        <nova:project uuid="77aa">uat-core-banking</nova:project>
      </nova:owner>
    </nova:instance>
  </metadata>
  <memory unit="KiB">8388608</memory>
  <vcpu>2</vcpu>
  <os><type arch="x86_64" machine="pc-q35-7.2">hvm</type></os>
  <devices>
    <interface type="bridge">
      <mac address="FA:16:3E:5C:20:01"/>
      <model type="virtio"/>
      <source bridge="br-int"/>
      <mtu size="8942"/>
      <target dev="tap5d7e1c2a-0b"/>
      <virtualport type="openvswitch">
        <parameters interfaceid="5d7e1c2a-0b3f-4e6d-9a8c-1f2e3d4c5b01"/>
      </virtualport>
    </interface>
  </devices>
</domain>
"""


@pytest.fixture(scope="module")
def model() -> InfraModel:
    return load_model(TEMPLATE)


@pytest.fixture(scope="module")
def rendered(model: InfraModel) -> dict[str, dict[str, str]]:
    renderer = Renderer(TEMPLATE)
    return {name: render_host(model, name, renderer) for name in sorted(model.hosts)}


def copy_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(TEMPLATE, root)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


# -- golden ------------------------------------------------------------------


def test_golden_outputs_for_the_template_repo(rendered: dict[str, dict[str, str]]) -> None:
    update = os.environ.get("LINTAS_UPDATE_GOLDEN") == "1"
    for host, artifacts in rendered.items():
        folder = GOLDEN / host
        if update:
            shutil.rmtree(folder, ignore_errors=True)
            for name, text in artifacts.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_text(text)
        on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        assert on_disk == set(artifacts), f"{host}: artifacts changed; regenerate with LINTAS_UPDATE_GOLDEN=1"
        for name, text in artifacts.items():
            assert (folder / name).read_text() == text, f"{host}/{name} differs from golden"


def test_artifact_names_per_kind(rendered: dict[str, dict[str, str]]) -> None:
    assert sorted(rendered[KVM]) == [
        "domains.json",
        "domains/uat-app-01.xml",
        "domains/uat-batch-01.xml",
        "domains/uat-web-01.xml",
        "ovs.json",
    ]
    assert sorted(rendered[OSC]) == ["expected.json", "ovs.json"]  # nova owns the domains: no XML


def test_rendering_is_deterministic(model: InfraModel, rendered: dict[str, dict[str, str]]) -> None:
    again = {name: render_host(model, name, Renderer(TEMPLATE)) for name in sorted(model.hosts)}
    assert again == rendered


# -- domain XML ----------------------------------------------------------------


def test_domain_xml_carries_the_modelled_mac_memory_and_vcpus(
    model: InfraModel, rendered: dict[str, dict[str, str]]
) -> None:
    for inst in (i for i in model.instances.values() if i.host == KVM):
        xml = rendered[KVM][f"domains/{inst.name}.xml"]
        facts = domain_facts(xml)
        flavor = model.flavors[inst.flavor]
        assert facts.macs == [n.mac for n in inst.nics]
        assert f"<mac address='{inst.nics[0].mac}'/>" in xml
        assert facts.memory_kib == facts.current_memory_kib == flavor.ram_mib * 1024
        assert (facts.vcpus, facts.shares) == (flavor.vcpus, flavor.vcpus * 1024)
        assert (facts.name, facts.uuid) == (inst.name, str(inst.uuid))
        assert facts.domain_type == model.hosts[KVM].domain_type == "qemu"  # the template's lab setting
        assert facts.managed_by == "lintas" and facts.instance_name == inst.name
        assert facts.flavor is not None and facts.flavor.name == flavor.name and facts.flavor.disk_gb == flavor.disk_gb
        assert facts.owner is not None and (facts.owner.user, facts.owner.project) == (inst.owner, inst.project)
        nic = facts.interfaces[0]
        assert (nic.type, nic.bridge, nic.virtualport_type, nic.model) == ("bridge", "br-int", "openvswitch", "virtio")
        assert nic.mtu == 8942  # uplink 9000 minus geneve over IPv4
        assert nic.interfaceid is not None and re.fullmatch(r"tap[0-9a-f]{8}-[0-9a-f]{2}", nic.target_dev or "")
        assert nic.target_dev == f"tap{nic.interfaceid[:11]}"
        assert facts.disks == ()  # no storage modelled: the lab boots diskless domains
        assert "<graphics" not in xml and "<serial type='pty'>" in xml


def test_modelled_port_id_is_the_interfaceid(tmp_path: Path) -> None:
    root = copy_repo(tmp_path)
    edit(
        root / "hosts/instances.yaml",
        'mac: "fa:16:3e:1a:00:01"',
        'mac: "fa:16:3e:1a:00:01"\n        port_id: 11111111-2222-4333-8444-555555555555',
    )
    out = render_host(load_model(root), KVM, Renderer(root))
    nic = domain_facts(out["domains/uat-web-01.xml"]).interfaces[0]
    assert (nic.interfaceid, nic.target_dev) == ("11111111-2222-4333-8444-555555555555", "tap11111111-22")


def test_render_options_domain_type_datapath_and_disks(model: InfraModel) -> None:
    opts = HostRenderOptions(
        domain_type="qemu",
        datapath_type="netdev",
        cpu_mode=None,
        machine="q35",
        instances_dir="/var/lib/lintas/instances",
    )
    out = render_host(model, KVM, Renderer(TEMPLATE), opts)
    xml = out["domains/uat-batch-01.xml"]
    facts = domain_facts(xml)
    assert facts.domain_type == "qemu" and "<cpu>" in xml and "machine='q35'" in xml
    assert [(d.target, d.bus, d.source) for d in facts.disks] == [
        ("vda", "virtio", "/var/lib/lintas/instances/3f0c6a52-6c6e-4b8e-9a57-0e3f5d1b2a03/disk")
    ]
    assert load_domain_index(out["domains.json"]).domain_type == "qemu"
    assert {b.datapath_type for b in load_ovs_spec(out["ovs.json"]).bridges} == {"netdev"}


def test_domains_index_has_power_state_and_absent_instances_get_no_xml(tmp_path: Path) -> None:
    root = copy_repo(tmp_path)
    edit(root / "hosts/instances.yaml", "host: kvm-uat-01\n    state: running", "host: kvm-uat-01\n    state: absent")
    out = render_host(load_model(root), KVM, Renderer(root))
    index = load_domain_index(out["domains.json"])
    states = {d.name: (d.state, d.xml) for d in index.domains}
    assert states == {
        "uat-web-01": ("absent", None),
        "uat-app-01": ("running", "domains/uat-app-01.xml"),
        "uat-batch-01": ("stopped", "domains/uat-batch-01.xml"),
    }
    assert "domains/uat-web-01.xml" not in out
    assert (index.kind, index.managed_by) == ("kvm", "lintas")


def test_xml_special_characters_are_escaped(tmp_path: Path) -> None:
    root = copy_repo(tmp_path)
    edit(root / "hosts/instances.yaml", "owner: team-payments", "owner: \"R&D <ops> 'x'\"")
    out = render_host(load_model(root), KVM, Renderer(root))
    owner = domain_facts(out["domains/uat-web-01.xml"]).owner
    assert owner is not None and owner.user == "R&D <ops> 'x'"


# -- openstack hosts: expected state -------------------------------------------


def test_openstack_expected_state(rendered: dict[str, dict[str, str]]) -> None:
    index = load_domain_index(rendered[OSC]["expected.json"])
    assert (index.kind, index.managed_by, index.domain_type) == ("openstack", "nova", None)
    [dom] = index.domains
    assert (dom.name, dom.uuid, dom.state, dom.vcpus, dom.memory_kib) == (
        "corebank-uat-01",
        "9b2d4f10-1c0e-4d7a-8f3e-6a5b4c3d2e01",
        "running",
        2,
        8 * 1024 * 1024,
    )
    assert [(n.mac, n.bridge, n.port_id) for n in dom.nics] == [
        ("fa:16:3e:5c:20:01", "br-int", "5d7e1c2a-0b3f-4e6d-9a8c-1f2e3d4c5b01")
    ]
    assert dom.xml is None


def test_check_domain_matches_nova_domain_and_catches_changed_mac(rendered: dict[str, dict[str, str]]) -> None:
    [dom] = load_domain_index(rendered[OSC]["expected.json"]).domains
    facts = domain_facts(NOVA_XML)
    assert (facts.managed_by, facts.instance_name, facts.name) == ("nova", "corebank-uat-01", "instance-0000002a")
    assert facts.flavor is not None and (facts.flavor.name, facts.flavor.memory_mib) == ("m1.tiny3.migrate", 8192)
    assert check_domain(dom, facts) == []  # MAC compared case-insensitively; nova's domain name is not compared
    changed = domain_facts(NOVA_XML.replace("FA:16:3E:5C:20:01", "fa:16:3e:5c:20:99"))
    assert check_domain(dom, changed) == ["interface 0 mac: fa:16:3e:5c:20:01 != fa:16:3e:5c:20:99"]
    moved = domain_facts(NOVA_XML.replace('bridge="br-int"', 'bridge="br-ex"'))
    assert check_domain(dom, moved) == ["interface 0 bridge: br-int != br-ex"]


# -- ovs.json ------------------------------------------------------------------


def test_ovs_spec_roundtrips_and_marks_ownership(rendered: dict[str, dict[str, str]]) -> None:
    for artifacts in rendered.values():
        spec = load_ovs_spec(artifacts["ovs.json"])
        assert spec.to_json() == artifacts["ovs.json"]
        assert json.loads(artifacts["ovs.json"]) == json.loads(spec.to_json())
        for bridge in spec.bridges:
            assert bridge.external_ids[MANAGED_KEY] == "true"
            assert all(p.external_ids[MANAGED_KEY] == "true" for p in bridge.ports)


def test_ovs_bridges_uplink_mtu_and_tunnel_address(rendered: dict[str, dict[str, str]]) -> None:
    kvm = load_ovs_spec(rendered[KVM]["ovs.json"])
    assert [(b.name, b.datapath_type, b.fail_mode) for b in kvm.bridges] == [
        ("br-int", "netdev", "secure"),
        ("br-phy", "netdev", "standalone"),
    ]
    ifaces = kvm.interfaces()
    assert ifaces["ens1f0"][0] == "br-phy" and ifaces["ens1f0"][1].mtu_request == 9000
    assert ifaces["br-phy"][1].type == "internal" and ifaces["br-phy"][1].mtu_request == 9000
    assert [(a.interface, a.address) for a in kvm.ip_addresses] == [("br-phy", "10.20.0.11/24")]
    assert kvm.open_vswitch.external_ids == {}  # plain geneve host: not an OVN chassis
    osc = load_ovs_spec(rendered[OSC]["ovs.json"])
    assert [b.name for b in osc.bridges] == ["br-int", "br-provider"]
    assert osc.interfaces()["ens1f0"][0] == "br-provider"


def test_ovn_chassis_external_ids(rendered: dict[str, dict[str, str]]) -> None:
    osc = load_ovs_spec(rendered[OSC]["ovs.json"])
    assert osc.open_vswitch.external_ids == {
        "system-id": "osc-01",
        "ovn-bridge": "br-int",
        "ovn-encap-type": "geneve",
        "ovn-encap-ip": "10.20.0.21",
        "ovn-remote": "ssl:10.255.0.5:6642,ssl:10.255.0.6:6642,ssl:10.255.0.7:6642",
        "ovn-bridge-mappings": "physnet1:br-provider",
    }
    # ovn-controller makes the tunnels of an OVN chassis: Lintas renders none
    assert all(i.type not in ("geneve", "vxlan") for _, i in osc.interfaces().values())


def test_geneve_port_to_every_peer() -> None:
    model = load_model_texts(generate_fabric(4, vnis_per_leaf=2, n_hosts=6, n_instances=6))
    renderer = Renderer(None)
    kvm_hosts = [h for _, h in sorted(model.hosts.items()) if h.tunnels is not None]
    assert len(kvm_hosts) == 3
    for host in kvm_hosts:
        spec = load_ovs_spec(render_host(model, host.name, renderer)["ovs.json"])
        tunnels = {name: (br, i) for name, (br, i) in spec.interfaces().items() if i.type == "geneve"}
        peers = {p.name: str(p.tunnel_ip.ip) for p in kvm_hosts if p.name != host.name}
        assert sorted(i.options["remote_ip"] for _, i in tunnels.values()) == sorted(peers.values())
        for name, (bridge, iface) in tunnels.items():
            assert bridge == "br-int" and len(name) <= 15
            assert iface.options["key"] == "flow" and iface.options["csum"] == "true"
            assert iface.options["local_ip"] == str(host.tunnel_ip.ip)
            assert iface.external_ids["lintas-peer"] in peers
            assert peers[iface.external_ids["lintas-peer"]] == iface.options["remote_ip"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(surprise=1), "Extra inputs are not permitted"),
        (
            lambda d: d["bridges"][0]["ports"].append(
                {"name": "gnv-x", "interfaces": [{"name": "gnv-x", "type": "geneve", "options": {"key": "flow"}}]}
            ),
            "needs options:remote_ip",
        ),
        (lambda d: d["bridges"][0]["ports"].append(d["bridges"][1]["ports"][1]), "is used twice"),
        (lambda d: d["bridges"][1]["ports"][1]["interfaces"][0].update(mtu_request=20), "greater than or equal to 68"),
        (lambda d: d["bridges"][0]["ports"].pop(0), "must list its local internal port"),
    ],
)
def test_ovs_spec_rejects_invalid_state(rendered: dict[str, dict[str, str]], mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(rendered[KVM]["ovs.json"])
    mutate(data)
    with pytest.raises(ValidationError, match=message):
        load_ovs_spec(json.dumps(data))


# -- repo override templates and hostile XML -------------------------------------


def test_repo_override_template_is_used(tmp_path: Path) -> None:
    root = copy_repo(tmp_path)
    builtin = (Path(__file__).resolve().parents[2] / "workers/render/templates/libvirt/domain.xml.j2").read_text()
    override = root / "templates/libvirt/domain.xml.j2"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text(
        builtin.replace("    <memballoon", "    <graphics type='vnc' autoport='yes'/>\n    <memballoon")
    )
    xml = render_host(load_model(root), KVM, Renderer(root))["domains/uat-web-01.xml"]
    assert "<graphics type='vnc' autoport='yes'/>" in xml
    base = render_host(load_model(TEMPLATE), KVM, Renderer(TEMPLATE))["domains/uat-web-01.xml"]
    assert semantic_diff(base, xml) == ["graphics: (none) != vnc"]


def test_override_that_contradicts_the_model_is_refused(tmp_path: Path) -> None:
    root = copy_repo(tmp_path)
    builtin = (Path(__file__).resolve().parents[2] / "workers/render/templates/libvirt/domain.xml.j2").read_text()
    (root / "templates/libvirt").mkdir(parents=True, exist_ok=True)
    (root / "templates/libvirt/domain.xml.j2").write_text(builtin.replace("{{ nic.mac }}", "fa:16:3e:66:66:66"))
    with pytest.raises(RenderError, match=r"interface 0 mac: fa:16:3e:1a:0\d:0\d != fa:16:3e:66:66:66") as err:
        render_host(load_model(root), KVM, Renderer(root))
    assert err.value.diagnostics[0].file == "libvirt/domain.xml.j2"
    assert err.value.diagnostics[0].path.startswith("kvm-uat-01/")


def test_override_template_error_names_template_line_and_target(tmp_path: Path) -> None:
    root = copy_repo(tmp_path)
    (root / "templates/libvirt").mkdir(parents=True, exist_ok=True)
    (root / "templates/libvirt/domain.xml.j2").write_text("<domain type='kvm'>\n  <name>{{ d.nosuch }}</name>\n")
    with pytest.raises(RenderError) as err:
        render_host(load_model(root), KVM, Renderer(root))
    diag = err.value.diagnostics[0]
    assert (diag.file, diag.line) == ("templates/libvirt/domain.xml.j2", 2) and diag.path == "kvm-uat-01/uat-app-01"


@pytest.mark.parametrize(
    "prolog",
    [
        '<!DOCTYPE domain [<!ENTITY x "kvm-uat-owned">]>',
        '<!DOCTYPE domain [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE domain [<!ENTITY a "aaaaaaaaaa"><!ENTITY x "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',
    ],
)
def test_template_injecting_a_dtd_or_entity_is_refused(tmp_path: Path, prolog: str) -> None:
    root = copy_repo(tmp_path)
    builtin = (Path(__file__).resolve().parents[2] / "workers/render/templates/libvirt/domain.xml.j2").read_text()
    evil = (
        prolog + "\n" + builtin.replace("<lintas:name>{{ d.name|e }}</lintas:name>", "<lintas:name>&x;</lintas:name>")
    )
    (root / "templates/libvirt").mkdir(parents=True, exist_ok=True)
    (root / "templates/libvirt/domain.xml.j2").write_text(evil)
    with pytest.raises(RenderError, match="must not contain a DTD"):
        render_host(load_model(root), KVM, Renderer(root))
    with pytest.raises(DomainXmlError, match="must not contain a DTD"):
        domain_facts(prolog + NOVA_XML)


def test_domain_facts_refuses_malformed_and_oversized_xml() -> None:
    with pytest.raises(DomainXmlError, match="malformed"):
        domain_facts("<domain><name>x</domain>")
    with pytest.raises(DomainXmlError, match="not <domain>"):
        domain_facts("<network><name>x</name></network>")
    with pytest.raises(DomainXmlError, match="too large"):
        domain_facts("<domain>" + " " * (1024 * 1024) + "</domain>")


# -- semantic diff ---------------------------------------------------------------


# What a real qemu driver returns for a rendered domain: defaults, addresses, aliases,
# controllers, seclabel, an expanded machine type, other quoting and namespace prefix.
def _libvirt_noise(xml: str) -> str:
    xml = xml.replace("'", '"').replace("xmlns:lintas=", "xmlns:ns0=").replace("lintas:", "ns0:")
    xml = xml.replace('<type arch="x86_64">hvm', '<type arch="x86_64" machine="pc-q35-7.2">hvm')
    xml = xml.replace('cores="1"', 'dies="1" cores="1"')
    xml = xml.replace(
        "  <devices>\n",
        "  <resource><partition>/machine</partition></resource>\n  <devices>\n"
        "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
        '    <controller type="usb" index="0" model="piix3-uhci"><alias name="usb"/>'
        '<address type="pci" domain="0x0000" bus="0x00" slot="0x01" function="0x2"/></controller>\n'
        '    <controller type="pci" index="0" model="pci-root"/>\n'
        '    <input type="mouse" bus="ps2"/>\n',
    )
    xml = xml.replace(
        "    </interface>",
        '      <alias name="net0"/>\n      <address type="pci" domain="0x0000" '
        'bus="0x00" slot="0x03" function="0x0"/>\n    </interface>',
    )
    xml = xml.replace('<memory unit="KiB">65536</memory>', '<memory unit="MiB">64</memory>')
    return xml.replace("</domain>", '  <seclabel type="dynamic" model="dac" relabel="yes"/>\n</domain>')


@pytest.fixture(scope="module")
def web(rendered: dict[str, dict[str, str]]) -> str:
    return rendered[KVM]["domains/uat-web-01.xml"]


def test_semantic_diff_ignores_libvirt_noise(web: str) -> None:
    noisy = _libvirt_noise(web)
    assert "pc-q35-7.2" in noisy and "<alias" in noisy and "MiB" in noisy and "ns0:flavor" in noisy
    assert semantic_diff(web, noisy) == []
    assert semantic_diff(web, web) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("fa:16:3e:1a:00:01", "fa:16:3e:00:00:02", ["interface 0 mac: fa:16:3e:1a:00:01 != fa:16:3e:00:00:02"]),
        ("<source bridge='br-int'/>", "<source bridge='br-ex'/>", ["interface 0 bridge: br-int != br-ex"]),
        ("<memory unit='KiB'>65536", "<memory unit='KiB'>131072", ["memory KiB: 65536 != 131072"]),
        ("<currentMemory unit='KiB'>65536", "<currentMemory unit='KiB'>32768", ["currentMemory KiB: 65536 != 32768"]),
        (">1</vcpu>", ">2</vcpu>", ["vcpus: 1 != 2"]),
        (
            "<virtualport type='openvswitch'>",
            "<virtualport type='802.1Qbh'>",
            ["interface 0 virtualport type: openvswitch != 802.1Qbh"],
        ),
        ("<model type='virtio'/>", "<model type='e1000'/>", ["interface 0 model: virtio != e1000"]),
        ("<mtu size='8942'/>", "<mtu size='1500'/>", ["interface 0 mtu: 8942 != 1500"]),
        (
            "<lintas:memory>64</lintas:memory>",
            "<lintas:memory>128</lintas:memory>",
            ["metadata flavor memory mib: 64 != 128"],
        ),
        ("<domain type='qemu'>", "<domain type='kvm'>", ["type: qemu != kvm"]),
        ("    <apic/>\n", "", ["feature apic: on != (none)"]),
    ],
)
def test_semantic_diff_catches_what_matters(web: str, old: str, new: str, expected: list[str]) -> None:
    assert old in web
    assert semantic_diff(web, _libvirt_noise(web.replace(old, new))) == expected


def test_semantic_diff_reports_added_and_removed_interfaces(web: str) -> None:
    start, end = web.index("    <interface"), web.index("</interface>") + len("</interface>\n")
    second = web[start:end].replace("fa:16:3e:1a:00:01", "fa:16:3e:1a:00:99").replace("tap081fda80-59", "tapx")
    two = web[:end] + second + web[end:]
    assert semantic_diff(web, two) == [
        "interfaces: 1 != 2",
        "interface 1: (none) != bridge fa:16:3e:1a:00:99 on br-int",
    ]
    assert semantic_diff(two, web) == [
        "interfaces: 2 != 1",
        "interface 1: bridge fa:16:3e:1a:00:99 on br-int != (none)",
    ]
