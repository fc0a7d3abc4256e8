"""The nornir inventory is checked against the model and for inline secrets."""

from __future__ import annotations

import pytest

from .cases import Case, Edit, append
from .conftest import Repo

IHOSTS, IGROUPS, IDEFAULTS = "inventory/hosts.yaml", "inventory/groups.yaml", "inventory/defaults.yaml"

CASES = {
    "inventory host not in the model": Case(
        (append(IHOSTS, "leaf-09:\n  hostname: 10.255.0.29\n  groups: [leaf, frr]\n"),),
        IHOSTS,
        "leaf-09:",
        "inventory host 'leaf-09' is not a device or host of the model",
    ),
    "unknown group": Case(
        (Edit(IHOSTS, "groups: [kvm]", "groups: [kvm, lab]"),),
        IHOSTS,
        "groups: [kvm, lab]",
        "unknown group 'lab'",
    ),
    "hostname differs from the management IP": Case(
        (Edit(IHOSTS, "hostname: 10.255.0.111", "hostname: 10.255.0.112"),),
        IHOSTS,
        "10.255.0.112",
        "inventory hostname 10.255.0.112 differs from the management IP 10.255.0.111 of 'osc-01'",
    ),
    "inline password": Case(
        (Edit(IDEFAULTS, "password: env:LINTAS_SSH_PASSWORD", "password: Sup3rS3cret"),),
        IDEFAULTS,
        "Sup3rS3cret",
        "secrets must not be written in the repo: use a reference like env:NAME or file:/path",
    ),
    "inline secret in connection extras": Case(
        (
            Edit(
                IDEFAULTS,
                "private_key: file:/etc/lintas/ssh/id_ed25519",
                "private_key: '-----BEGIN OPENSSH PRIVATE KEY-----'",
            ),
        ),
        IDEFAULTS,
        "private_key:",
        "inline secret in 'connection_options.ssh.extras.private_key': use a reference like env:NAME or file:/path",
    ),
    "inline secret in group data": Case(
        (Edit(IGROUPS, "    config_format: eos\n", "    config_format: eos\n    api_token: abc123\n"),),
        IGROUPS,
        "api_token",
        "inline secret in 'data.api_token': use a reference like env:NAME or file:/path",
    ),
    "unknown key in an inventory entry": Case(
        (Edit(IHOSTS, "  hostname: 10.255.0.11\n", "  hostname: 10.255.0.11\n  hostnmae: x\n"),),
        IHOSTS,
        "hostnmae",
        "unknown key 'hostnmae'",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_inventory_check(repo: Repo, case: Case) -> None:
    case.run(repo)


def test_inventory_is_optional(repo: Repo) -> None:
    for rel in (IHOSTS, IGROUPS, IDEFAULTS):
        repo.path(rel).unlink()
    assert repo.load().inventory.hosts == {}


def test_dns_hostnames_are_not_compared(repo: Repo) -> None:
    repo.edit(IHOSTS, "hostname: 10.255.0.111", "hostname: osc-01.mgmt.dc1.example")
    assert repo.load().inventory.hosts["osc-01"].hostname == "osc-01.mgmt.dc1.example"
