"""Syntax and schema errors: located, complete, and without cascades."""

from __future__ import annotations

import pytest

from lintas.engine.errors import ModelError

from .conftest import Repo, at

DEVICES = "fabric/devices.yaml"
HOSTS = "hosts/hosts.yaml"
INSTANCES = "hosts/instances.yaml"


def test_unknown_key_is_an_error_with_its_line(repo: Repo) -> None:
    repo.edit(DEVICES, "    id: 12\n", "    id: 12\n    loopbak: 10.250.0.99\n")
    diag = repo.error()
    assert at(diag) == (DEVICES, repo.line(DEVICES, "loopbak"), "unknown key 'loopbak'")
    assert (diag.column, diag.path) == (5, "devices[3].loopbak")


def test_unknown_top_level_key(repo: Repo) -> None:
    repo.append("fabric/links.yaml", "linkz: []\n")
    assert at(repo.error()) == ("fabric/links.yaml", repo.line("fabric/links.yaml", "linkz"), "unknown key 'linkz'")


def test_missing_required_key(repo: Repo) -> None:
    repo.edit(DEVICES, "    role: leaf\n", "", count=1)
    diag = repo.error()
    assert at(diag) == (DEVICES, repo.line(DEVICES, "name: leaf-01"), "missing required key 'role'")
    assert diag.path == "devices[2].role"


def test_required_file_missing(repo: Repo) -> None:
    repo.path(DEVICES).unlink()
    errors = repo.errors()
    assert [(d.file, d.line, d.message) for d in errors][0] == (DEVICES, None, "required file is missing")


def test_invalid_value_message_names_what_was_expected(repo: Repo) -> None:
    repo.edit("fabric/fabric.yaml", "p2p: 10.250.16.0/22", "p2p: 10.250.16.1/22")
    assert at(repo.error()) == (
        "fabric/fabric.yaml",
        repo.line("fabric/fabric.yaml", "p2p: 10.250.16.1/22"),
        "invalid network '10.250.16.1/22': host bits are set (did you mean 10.250.16.0/22?)",
    )


def test_inline_secret_is_rejected(repo: Repo) -> None:
    repo.edit("fabric/fabric.yaml", "password: env:FABRIC_BGP_PASSWORD", "password: hunter2")
    assert at(repo.error()) == (
        "fabric/fabric.yaml",
        repo.line("fabric/fabric.yaml", "hunter2"),
        "secrets must not be written in the repo: use a reference like env:NAME or file:/path",
    )


def test_malformed_mac(repo: Repo) -> None:
    repo.edit(INSTANCES, '"fa:16:3e:1a:00:02"', '"fa:16:3e:1a:00:zz"')
    assert at(repo.error()) == (
        INSTANCES,
        repo.line(INSTANCES, "fa:16:3e:1a:00:zz"),
        "invalid MAC address 'fa:16:3e:1a:00:zz': expected six hex octets like fa:16:3e:00:00:01",
    )


def test_unquoted_mac_read_as_a_number_gets_a_hint(repo: Repo) -> None:
    # YAML 1.1 reads 12:34:56:00:00:01 as a base-60 integer
    repo.edit(INSTANCES, 'mac: "fa:16:3e:1a:00:01"', "mac: 12:34:56:00:00:01")
    assert at(repo.error()) == (
        INSTANCES,
        repo.line(INSTANCES, "12:34:56:00:00:01"),
        "invalid MAC address: YAML read it as a number; quote it, like 'fa:16:3e:00:00:01'",
    )


def test_host_needs_exactly_one_tunnel_mode(repo: Repo) -> None:
    repo.edit(HOSTS, "    tunnels:\n", "    ovn: {remote: 'ssl:10.255.0.5:6642'}\n    tunnels:\n")
    assert at(repo.error()) == (
        HOSTS,
        repo.line(HOSTS, "name: kvm-uat-01"),
        "set exactly one of 'tunnels' (plain OVS geneve) or 'ovn' (OVN chassis settings)",
    )


def test_yaml_syntax_error_is_reported_with_other_files_errors(repo: Repo) -> None:
    repo.edit(HOSTS, "  - name: osc-01\n", "  - name: osc-01\n   bad-indent: [\n")
    repo.edit(DEVICES, "    id: 12\n", "    id: 12\n    colour: blue\n")
    files = sorted({d.file for d in repo.errors()})
    assert files == [DEVICES, HOSTS]


def test_several_errors_reported_at_once_sorted_by_file_and_line(repo: Repo) -> None:
    repo.edit(DEVICES, "    id: 12\n", "    id: 12\n    colour: blue\n")  # schema
    repo.edit(DEVICES, "mgmt_ip: 10.255.0.24/24", "mgmt_ip: 10.255.0.23/24")  # duplicate
    repo.edit("fabric/tenants.yaml", "vni: 10020", "vni: 10010")  # duplicate VNI
    repo.edit(INSTANCES, "flavor: m1.tiny3.migrate\n    host: osc-01", "flavor: m9.huge\n    host: osc-01")
    errors = repo.errors()
    assert [(d.file, d.line) for d in errors] == sorted((d.file, d.line or 0) for d in errors)
    assert [at(d) for d in errors] == [
        (DEVICES, repo.line(DEVICES, "colour"), "unknown key 'colour'"),
        (
            DEVICES,
            repo.line(DEVICES, "10.255.0.23/24", nth=2),
            f"duplicate management IP 10.255.0.23: already used by 'leaf-03' ({DEVICES}:"
            f"{repo.line(DEVICES, '10.255.0.23/24')})",
        ),
        (
            "fabric/tenants.yaml",
            repo.line("fabric/tenants.yaml", "vni: 10010", nth=2),
            "VNI 10010 is already used by network 'uat-web' for VLAN 10 "
            f"(fabric/tenants.yaml:{repo.line('fabric/tenants.yaml', 'vni: 10010')})",
        ),
        (INSTANCES, repo.line(INSTANCES, "m9.huge"), "unknown flavor 'm9.huge'"),
        (
            "inventory/hosts.yaml",
            repo.line("inventory/hosts.yaml", "hostname: 10.255.0.24"),
            "inventory hostname 10.255.0.24 differs from the management IP 10.255.0.23 of 'leaf-04'",
        ),
    ]


def test_model_error_text_lists_every_problem(repo: Repo) -> None:
    repo.edit(DEVICES, "    id: 12\n", "    id: 12\n    colour: blue\n")
    with pytest.raises(ModelError) as exc:
        repo.load()
    text = str(exc.value)
    assert text.startswith("the infra model has 1 problem(s)\n")
    assert f"{DEVICES}:{repo.line(DEVICES, 'colour')}:5: [devices[3].colour] unknown key 'colour'" in text


def test_an_invalid_device_does_not_cascade_into_unknown_references(repo: Repo) -> None:
    # leaf-01 fails the schema; links, networks, hosts and inventory naming it stay quiet
    repo.edit(DEVICES, "    id: 11\n", "    id: eleven\n")
    diag = repo.error()
    assert diag.file == DEVICES and diag.path == "devices[2].id"


def test_unreadable_file_does_not_cascade(repo: Repo) -> None:
    repo.write("fabric/tenants.yaml", "vrfs: [\n")
    errors = repo.errors()
    assert {d.file for d in errors} == {"fabric/tenants.yaml"}


def test_list_that_is_not_a_list(repo: Repo) -> None:
    repo.write("hosts/flavors.yaml", "flavors: {name: x}\n")
    errors = repo.errors()
    assert at(errors[0]) == ("hosts/flavors.yaml", 1, "'flavors' must be a list")
    assert len(errors) == 1


def test_symlink_outside_the_repo_is_refused(repo: Repo) -> None:
    repo.path(INSTANCES).unlink()
    repo.path(INSTANCES).symlink_to("/etc/passwd")
    errors = repo.errors()
    assert any(d.file == INSTANCES and "outside the repository" in d.message for d in errors)
