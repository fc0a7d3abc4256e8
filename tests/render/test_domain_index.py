"""A domain against the model, field by field (workers/render/domain_index.py): structured mismatches,
one MAC comparison, and the domain's own fields apart from its NICs."""

from __future__ import annotations

from lintas.workers.render.domain import DomainFacts, InterfaceFacts
from lintas.workers.render.domain_index import (
    ExpectedDomain,
    ExpectedFlavor,
    ExpectedNic,
    Mismatch,
    check_domain,
    domain_mismatches,
    same_mac,
)

NIC = ExpectedNic(
    network="uat-web", mac="fa:16:3e:1a:00:01", bridge="br-int", model="virtio", port_id=None, target_dev=None, mtu=None
)
EXP = ExpectedDomain(
    name="uat-web-01",
    uuid="1" * 32,
    state="running",
    project="uat",
    owner="ops",
    flavor=ExpectedFlavor(name="m1.small", vcpus=2, ram_mib=2048, disk_gb=20, swap_mib=0, ephemeral_gb=0),
    memory_kib=2097152,
    vcpus=2,
    nics=[NIC],
)


def facts(**kw: object) -> DomainFacts:
    nic = InterfaceFacts(
        type="bridge", mac="fa:16:3e:1a:00:01", bridge="br-int", virtualport_type="openvswitch", model="virtio"
    )
    base: dict[str, object] = dict(
        name="uat-web-01",
        uuid="1" * 32,
        domain_type="kvm",
        memory_kib=2097152,
        current_memory_kib=2097152,
        vcpus=2,
        interfaces=[nic],
    )
    base.update(kw)
    return DomainFacts.model_validate(base)


def test_a_matching_domain_has_no_mismatch() -> None:
    assert domain_mismatches(EXP, facts()) == []


def test_mismatches_name_the_field_the_nic_and_both_values() -> None:
    nic = InterfaceFacts(
        type="bridge", mac="fa:16:3e:ff:00:01", bridge="br-ex", virtualport_type="openvswitch", model="virtio"
    )
    got = domain_mismatches(EXP, facts(vcpus=4, interfaces=[nic]))
    assert got == [
        Mismatch("vcpus", 2, 4),
        Mismatch("mac", "fa:16:3e:1a:00:01", "fa:16:3e:ff:00:01", nic=0),
        Mismatch("bridge", "br-int", "br-ex", nic=0),
    ]
    assert (
        [str(m) for m in got]
        == check_domain(EXP, facts(vcpus=4, interfaces=[nic]))
        == [
            "vcpus: 2 != 4",
            "interface 0 mac: fa:16:3e:1a:00:01 != fa:16:3e:ff:00:01",
            "interface 0 bridge: br-int != br-ex",
        ]
    )


def test_the_domains_own_fields_leave_its_nics_to_the_live_check() -> None:
    assert domain_mismatches(EXP, facts(memory_kib=1024, interfaces=[]), nics=False) == [
        Mismatch("memory KiB", 2097152, 1024)
    ]
    assert Mismatch("interfaces", 1, 0) in domain_mismatches(EXP, facts(interfaces=[]))


def test_one_mac_comparison_ignores_case_only() -> None:
    assert same_mac("fa:16:3e:1a:00:01", "FA:16:3E:1A:00:01")
    assert not same_mac("fa:16:3e:1a:00:01", "fa:16:3e:1a:00:02")
    assert not same_mac("fa:16:3e:1a:00:01", None) and same_mac(None, None)
