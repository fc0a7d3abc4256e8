"""workers.hosts.domains: converge / snapshot / restore / check / drift logic.

Against libvirt's own ``test`` driver (a real libvirt connection, in-process state, a
fresh node per test); the same code against real libvirtd + QEMU/KVM is exercised by
the lab e2e tests (tests/deploy/test_hosts_e2e.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lintas.workers.hosts import domains as D
from lintas.workers.render.domain import domain_facts
from lintas.workers.render.hosts import DomainIndex, load_domain_index

from .helpers import bundle, template_model

NODE = """<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads>
<active>4</active><mhz>2000</mhz><model>x86_64</model></cpu><memory>33554432</memory></node>"""


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Any]:
    node = tmp_path / "node.xml"
    node.write_text(NODE)
    c = D.open_conn(f"test://{node}", readonly=False)
    yield c
    c.close()


@pytest.fixture
def kvm() -> tuple[DomainIndex, dict[str, str]]:
    arts = bundle("kvm-uat-01")
    return load_domain_index(arts["domains.json"]), arts


def converge(conn: Any, index: DomainIndex, arts: dict[str, str], deletions: bool = False) -> list[D.DomainChange]:
    return D.converge(conn, index, arts, allow_deletions=deletions, shutdown_timeout_s=0.2, parallelism=4)


def test_defines_and_starts_then_nothing_to_do(conn: Any, kvm: tuple[DomainIndex, dict[str, str]]) -> None:
    index, arts = kvm
    first = {c.name: c.actions for c in converge(conn, index, arts)}
    assert first == {
        "uat-web-01": ["defined", "started"],
        "uat-app-01": ["defined", "started"],
        "uat-batch-01": ["defined"],
    }
    assert all(not c.actions for c in converge(conn, index, arts))
    seen = D.observe(conn, [d.uuid for d in index.domains])
    checks = D.check(index, seen, None, deletions_allowed=False)
    assert all(ok for _d, _s, ok, _w, _h in checks), checks
    assert D.drift(index, arts, seen) == []


def test_changed_memory_redefines_and_reports_restart_pending(conn: Any) -> None:
    model = template_model()
    index, arts = load_domain_index(bundle("kvm-uat-01", model)["domains.json"]), bundle("kvm-uat-01", model)
    converge(conn, index, arts)
    arts2 = dict(arts)
    xml = arts["domains/uat-web-01.xml"].replace(
        "<memory unit='KiB'>65536</memory>", "<memory unit='KiB'>131072</memory>"
    )
    xml = xml.replace(
        "<currentMemory unit='KiB'>65536</currentMemory>", "<currentMemory unit='KiB'>131072</currentMemory>"
    )
    assert xml != arts["domains/uat-web-01.xml"], "the template's memory element changed shape"
    arts2["domains/uat-web-01.xml"] = xml
    web = next(d for d in index.domains if d.name == "uat-web-01")
    index2 = index.model_copy(
        update={"domains": [d.model_copy(update={"memory_kib": 131072}) if d is web else d for d in index.domains]}
    )
    changes = {c.name: c for c in converge(conn, index2, arts2)}
    assert changes["uat-web-01"].actions[0].startswith("redefined: memory")
    assert changes["uat-web-01"].restart_pending == ["memory 65536 -> 131072 KiB at the next cold boot"]
    assert changes["uat-app-01"].actions == []
    dom = conn.lookupByUUIDString(web.uuid)
    assert domain_facts(dom.XMLDesc(D.XML_INACTIVE)).memory_kib == 131072


def test_removed_instance_is_kept_unless_deletions_are_allowed(
    conn: Any, kvm: tuple[DomainIndex, dict[str, str]]
) -> None:
    index, arts = kvm
    converge(conn, index, arts)
    gone = index.model_copy(update={"domains": [d for d in index.domains if d.name != "uat-app-01"]})
    kept = {c.name: c for c in converge(conn, gone, arts)}
    assert kept["uat-app-01"].kept is not None and "deletions" in kept["uat-app-01"].kept
    assert conn.lookupByName("uat-app-01").isActive()
    removed = {c.name: c for c in converge(conn, gone, arts, deletions=True)}
    assert removed["uat-app-01"].actions[-1] == "undefined"
    assert "uat-app-01" not in [d.name() for d in conn.listAllDomains()]


def test_stopped_state_is_driven_and_reported(conn: Any, kvm: tuple[DomainIndex, dict[str, str]]) -> None:
    index, arts = kvm
    converge(conn, index, arts)
    conn.lookupByName("uat-batch-01").create()  # someone started it by hand
    seen = D.observe(conn, [d.uuid for d in index.domains])
    assert "domain uat-batch-01: running (want stopped)" in D.drift(index, arts, seen)
    changes = {c.name: c for c in converge(conn, index, arts)}
    assert changes["uat-batch-01"].actions and not conn.lookupByName("uat-batch-01").isActive()


def test_snapshot_restore_undoes_define_and_redefine(conn: Any, kvm: tuple[DomainIndex, dict[str, str]]) -> None:
    index, arts = kvm
    only_web = index.model_copy(update={"domains": [d for d in index.domains if d.name == "uat-web-01"]})
    converge(conn, only_web, arts)
    before = D.snapshot(conn, [d.uuid for d in index.domains])
    converge(conn, index, arts)
    assert {d.name() for d in conn.listAllDomains()} >= {"uat-web-01", "uat-app-01", "uat-batch-01"}
    done = D.restore(conn, before, shutdown_timeout_s=0.1)
    assert any("removed" in x for x in done)
    names = {d.name() for d in conn.listAllDomains()}
    assert "uat-web-01" in names and "uat-app-01" not in names and "uat-batch-01" not in names


def test_a_foreign_domain_with_a_modelled_uuid_is_never_taken_over(
    conn: Any, kvm: tuple[DomainIndex, dict[str, str]]
) -> None:
    index, arts = kvm
    web = next(d for d in index.domains if d.name == "uat-web-01")
    conn.defineXML(
        f"<domain type='test'><name>someone-else</name><uuid>{web.uuid}</uuid>"
        "<memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"
    )
    with pytest.raises(D.DomainError, match="not Lintas-managed"):
        converge(conn, index, arts)
    assert [d.name() for d in conn.listAllDomains() if d.name() != "test"] == ["someone-else"]


def test_nova_hosts_are_never_converged(conn: Any) -> None:
    arts = bundle("osc-01")
    index = load_domain_index(arts["expected.json"])
    with pytest.raises(D.DomainError, match="nova owns"):
        converge(conn, index, arts)


def test_check_catches_a_mac_that_differs_from_the_model(conn: Any, kvm: tuple[DomainIndex, dict[str, str]]) -> None:
    index, arts = kvm
    converge(conn, index, arts)
    web = next(d for d in index.domains if d.name == "uat-web-01")
    dom = conn.lookupByUUIDString(web.uuid)
    dom.destroy()
    conn.defineXML(dom.XMLDesc(D.XML_INACTIVE).replace("fa:16:3e:1a:00:01", "fa:16:3e:ff:00:01"))
    dom.create()
    seen = D.observe(conn, [d.uuid for d in index.domains])
    bad = [c for c in D.check(index, seen, None, deletions_allowed=False) if not c[2]]
    assert bad == [
        ("uat-web-01", "nic 0 (uat-web)", False, "fa:16:3e:1a:00:01 on br-int", "fa:16:3e:ff:00:01 on br-int")
    ]
    assert any("fa:16:3e:1a:00:01" in line and "fa:16:3e:ff:00:01" in line for line in D.drift(index, arts, seen))
