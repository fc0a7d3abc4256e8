"""libvirt itself accepts every rendered domain: ``defineXML`` on ``test:///default``
(no daemon needed) with schema validation, and reads back the same facts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lintas.workers.model.generate import generate_fabric
from lintas.workers.model.loader import load_model, load_model_texts
from lintas.workers.render.domain import domain_facts, semantic_diff
from lintas.workers.render.env import Renderer
from lintas.workers.render.hosts import HostRenderOptions, render_host

from .test_hosts import NOVA_XML, TEMPLATE

try:
    import libvirt
except ImportError as exc:  # a missing binding must fail the suite, not skip it
    raise ImportError(
        "libvirt-python is required for these tests: pip install libvirt-python==12.8.0 "
        "(builds against libvirt-dev and pkg-config)"
    ) from exc

OPTIONS = {
    "kvm": HostRenderOptions(domain_type="kvm"),
    "qemu-lab": HostRenderOptions(domain_type="qemu", datapath_type="netdev", cpu_mode=None),
    "disks-q35": HostRenderOptions(
        machine="q35", cpu_mode="host-passthrough", instances_dir="/var/lib/lintas/instances"
    ),
}


@pytest.fixture
def conn() -> Iterator[libvirt.virConnect]:
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors arrive as exceptions, not stderr
    c = libvirt.open("test:///default")
    try:
        yield c
    finally:
        c.close()


def _template_domains(options: HostRenderOptions) -> dict[str, str]:
    model = load_model(TEMPLATE)
    renderer = Renderer(TEMPLATE)
    out: dict[str, str] = {}
    for host in sorted(h for h in model.hosts if model.hosts[h].owns_domains):
        out.update(
            {f"{host}/{k}": v for k, v in render_host(model, host, renderer, options).items() if k.endswith(".xml")}
        )
    return out


def _define_and_read_back(conn: libvirt.virConnect, xml: str) -> str:
    dom = conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)  # validated against libvirt's domain.rng
    try:
        return str(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    finally:
        dom.undefine()


@pytest.mark.parametrize("variant", sorted(OPTIONS))
def test_libvirt_accepts_every_rendered_domain(conn: libvirt.virConnect, variant: str) -> None:
    domains = _template_domains(OPTIONS[variant])
    assert len(domains) == 3
    for name, xml in domains.items():
        back = _define_and_read_back(conn, xml)
        want, have = domain_facts(xml), domain_facts(back)
        assert (have.name, have.uuid, have.memory_kib, have.vcpus) == (
            want.name,
            want.uuid,
            want.memory_kib,
            want.vcpus,
        )
        assert have.macs == want.macs and [i.bridge for i in have.interfaces] == ["br-int"]
        assert have == want, name  # every fact survives the round trip, metadata included
        assert semantic_diff(xml, back) == [], name


def test_libvirt_accepts_generated_domains(conn: libvirt.virConnect) -> None:
    model = load_model_texts(generate_fabric(4, vnis_per_leaf=2, n_hosts=4, n_instances=16))
    renderer = Renderer(None)
    count = 0
    for host in sorted(h for h in model.hosts if model.hosts[h].owns_domains):
        for artifact, xml in render_host(model, host, renderer).items():
            if artifact.endswith(".xml"):
                assert semantic_diff(xml, _define_and_read_back(conn, xml)) == [], artifact
                count += 1
    assert count == 8


def test_libvirt_rejects_a_broken_domain(conn: libvirt.virConnect) -> None:
    """The acceptance test can fail: libvirt validates what it is given."""
    xml = _template_domains(OPTIONS["kvm"])["kvm-uat-01/domains/uat-web-01.xml"]
    with pytest.raises(libvirt.libvirtError):
        conn.defineXMLFlags(xml.replace("fa:16:3e:1a:00:01", "fa:16:3e:1a:00"), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    with pytest.raises(libvirt.libvirtError, match="validate"):
        conn.defineXMLFlags(xml.replace("<on_crash>destroy", "<on_crash>explode"), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)


def test_nova_style_domain_reads_back_as_nova_managed(conn: libvirt.virConnect) -> None:
    """What the lab's nova stand-in defines is recognised as nova's after a libvirt round trip."""
    back = domain_facts(_define_and_read_back(conn, NOVA_XML))
    assert (back.managed_by, back.instance_name, back.macs) == ("nova", "corebank-uat-01", ["fa:16:3e:5c:20:01"])
    assert back.flavor is not None and back.flavor.vcpus == 2
    assert semantic_diff(NOVA_XML, _define_and_read_back(conn, NOVA_XML)) == []
