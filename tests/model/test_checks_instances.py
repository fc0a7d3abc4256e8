"""Each semantic check of instances has a failing fixture: message and location."""

from __future__ import annotations

import pytest

from .cases import Case, Edit
from .conftest import Repo

HOSTS, INST = "hosts/hosts.yaml", "hosts/instances.yaml"


CASES = {
    "unknown flavor": Case(
        (Edit(INST, "flavor: m1.tiny3.migrate\n    host: osc-01", "flavor: m1.huge\n    host: osc-01"),),
        INST,
        "flavor: m1.huge",
        "unknown flavor 'm1.huge'",
    ),
    "unknown host": Case(
        (Edit(INST, "host: osc-01", "host: osc-09"),),
        INST,
        "host: osc-09",
        "unknown host 'osc-09'",
    ),
    "NIC on an unknown network": Case(
        (
            Edit(
                INST,
                '- network: uat-app\n        mac: "fa:16:3e:1a:00:02"',
                '- network: uat-db\n        mac: "fa:16:3e:1a:00:02"',
            ),
        ),
        INST,
        "network: uat-db",
        "unknown network 'uat-db'",
    ),
    "NIC on a network not trunked to the host": Case(
        (
            Edit(
                INST,
                '- network: uat-web\n        mac: "fa:16:3e:5c:20:01"',
                '- network: uat-app\n        mac: "fa:16:3e:5c:20:01"',
            ),
        ),
        INST,
        "network: uat-app",
        "network 'uat-app' is not trunked to host 'osc-01' (add it to the host's uplink.networks)",
        nth=3,
    ),
    "NIC on a bridge the host lacks": Case(
        (
            Edit(
                INST, '        mac: "fa:16:3e:1a:00:01"\n', '        mac: "fa:16:3e:1a:00:01"\n        bridge: br-ex\n'
            ),
        ),
        INST,
        "bridge: br-ex",
        "host 'kvm-uat-01' has no OVS bridge 'br-ex'",
    ),
    "multicast MAC": Case(
        (Edit(INST, '"fa:16:3e:1a:00:02"', '"01:16:3e:1a:00:02"'),),
        INST,
        "01:16:3e:1a:00:02",
        "MAC 01:16:3e:1a:00:02 is a multicast address; instance NICs need a unicast MAC",
    ),
    "all-zero MAC": Case(
        (Edit(INST, '"fa:16:3e:1a:00:02"', '"00:00:00:00:00:00"'),),
        INST,
        "00:00:00:00:00:00",
        "MAC 00:00:00:00:00:00 is not a usable address",
    ),
    "duplicate MAC, whatever its case": Case(
        (Edit(INST, '"fa:16:3e:5c:20:01"', '"FA:16:3E:1A:00:01"'),),
        INST,
        "FA:16:3E:1A:00:01",
        "duplicate MAC fa:16:3e:1a:00:01: already used by instance 'uat-web-01' nics[0] "
        "(hosts/instances.yaml:{line:hosts/instances.yaml|fa:16:3e:1a:00:01})",
    ),
    "duplicate uuid": Case(
        (Edit(INST, "uuid: 3f0c6a52-6c6e-4b8e-9a57-0e3f5d1b2a02", "uuid: 3F0C6A52-6C6E-4B8E-9A57-0E3F5D1B2A01"),),
        INST,
        "3F0C6A52",
        "duplicate instance uuid 3f0c6a52-6c6e-4b8e-9a57-0e3f5d1b2a01: already used by 'uat-web-01' "
        "(hosts/instances.yaml:{line:hosts/instances.yaml|2a01})",
    ),
    "duplicate instance name": Case(
        (Edit(INST, "- name: uat-app-01", "- name: uat-web-01"),),
        INST,
        "name: uat-web-01",
        "duplicate instance name 'uat-web-01' (first defined at hosts/instances.yaml:{line:hosts/instances.yaml|name: uat-web-01})",
        nth=2,
    ),
    "duplicate flavor name": Case(
        (Edit("hosts/flavors.yaml", "- name: m1.medium", "- name: lab.nano"),),
        "hosts/flavors.yaml",
        "name: lab.nano",
        "duplicate flavor name 'lab.nano' (first defined at hosts/flavors.yaml:{line:hosts/flavors.yaml|name: lab.nano})",
        nth=2,
    ),
    "capacity: vCPUs": Case(
        (Edit(HOSTS, "vcpus: 64", "vcpus: 1"),),
        INST,
        "host: kvm-uat-01",
        "instance does not fit on host 'kvm-uat-01': 4 vCPUs placed, the limit is 2 (1 vCPUs x cpu_allocation_ratio 2)",
        nth=3,
    ),
    "capacity: memory": Case(
        (Edit(HOSTS, "memory_mib: 524288", "memory_mib: 20000"),),
        INST,
        "host: kvm-uat-01",
        "instance does not fit on host 'kvm-uat-01': 8320 MiB of memory placed, the limit is 3616 MiB "
        "((20000 - 16384 reserved) x ram_allocation_ratio 1)",
        nth=3,
    ),
    "capacity: default overcommit ratio applies": Case(
        (Edit(HOSTS, "cpu_allocation_ratio: 4.0", "cpu_allocation_ratio: 0.01"),),
        INST,
        "host: osc-01",
        "instance does not fit on host 'osc-01': 2 vCPUs placed, the limit is 0.96 (96 vCPUs x cpu_allocation_ratio 0.01)",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_instance_check(repo: Repo, case: Case) -> None:
    case.run(repo)


def test_absent_instances_free_capacity_and_their_mac(repo: Repo) -> None:
    repo.edit(HOSTS, "vcpus: 64", "vcpus: 1")  # 1 x 2.0: room for the two lab.nano instances only
    repo.edit(INST, "state: stopped", "state: absent")
    repo.edit(INST, '"fa:16:3e:1a:00:03"', '"fa:16:3e:1a:00:01"')
    model = repo.load()
    assert model.instances["uat-batch-01"].state == "absent"


def test_stopped_instances_still_hold_capacity(repo: Repo) -> None:
    repo.edit(HOSTS, "vcpus: 64", "vcpus: 1")
    assert [d.message.split(":")[0] for d in repo.errors()] == ["instance does not fit on host 'kvm-uat-01'"]
