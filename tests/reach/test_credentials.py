"""Credential sources (workers.reach.credentials): the lab's login only for the targets it built (name AND
address), the operator's configured groups otherwise, the allow-list before any of them, and never a
secret in a log. No network: logins are computed, nothing is contacted."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from lintas.engine.settings import CredentialGroup, DeploySettings, Settings
from lintas.workers.deploy.connect import device_conns
from lintas.workers.hosts.connect import host_conns
from lintas.workers.lab.frr import DAEMONS
from lintas.workers.lab.paths import LabPaths
from lintas.workers.lab.register import lab_registration, register_lab, unregister_lab
from lintas.workers.lab.state import state_from_plan
from lintas.workers.lab.topology import plan_lab
from lintas.workers.model import InfraModel, load_model
from lintas.workers.reach.allowlist import ConnectError, check_address
from lintas.workers.reach.credentials import (
    ConfiguredSource,
    RegisteredSource,
    Target,
    credential_sources,
    find_login,
    registration_file,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "gitops-repo-template"
NEVER = "198.51.100.7"  # must never be contacted: refused before any connection


@pytest.fixture(autouse=True)
def _no_operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LINTAS_DEPLOY__"):
            monkeypatch.delenv(name)


def _repo(tmp_path: Path, *edits: tuple[str, str, str]) -> InfraModel:
    root = tmp_path / f"repo-{len(list(tmp_path.glob('repo-*')))}"
    shutil.copytree(TEMPLATE, root)
    for rel, old, new in edits:
        p = root / rel
        assert old in p.read_text()
        p.write_text(p.read_text().replace(old, new, 1))
    return load_model(root)


def _lab_home(tmp_path: Path) -> Path:
    """A home where ``lintas lab up`` registered the template's lab (written as it writes it)."""
    home = tmp_path / "home"
    paths = LabPaths(home)
    register_lab(paths, state_from_plan(plan_lab(load_model(TEMPLATE)), paths, TEMPLATE, DAEMONS))
    return home


def _settings(home: Path, **deploy: object) -> Settings:
    return Settings(home=home, deploy=DeploySettings(**deploy))  # type: ignore[arg-type]


def test_lab_up_registers_every_switch_and_host_with_its_address(tmp_path: Path) -> None:
    home = _lab_home(tmp_path)
    path = registration_file(home, "lab")
    assert path.stat().st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text())
    by_name = {t["name"]: t for t in doc["targets"]}
    assert by_name["leaf-01"]["address"] == "10.255.0.21" and by_name["leaf-01"]["kind"] == "device"
    assert by_name["osc-01"]["kind"] == "host"
    assert by_name["leaf-01"]["key_file"] == str(LabPaths(home).key)
    assert "BEGIN" not in path.read_text()  # paths only, never a key
    assert unregister_lab(LabPaths(home)) and not path.exists()


def test_lab_credentials_serve_the_switches_it_built(tmp_path: Path) -> None:
    home = _lab_home(tmp_path)
    conns = device_conns(_repo(tmp_path), _settings(home), ["leaf-01", "spine-02"])
    lab = LabPaths(home)
    for c in conns.values():
        assert (c.source, c.username, c.key_file, c.known_hosts, c.port) == (
            "lab",
            "root",
            lab.key,
            lab.known_hosts,
            22,
        )
    hosts = host_conns(_repo(tmp_path), _settings(home), ["kvm-uat-01"])
    assert hosts["kvm-uat-01"].source == "lab" and hosts["kvm-uat-01"].key_file == lab.key


def test_a_name_that_matches_a_lab_device_at_another_address_never_gets_lab_credentials(tmp_path: Path) -> None:
    home = _lab_home(tmp_path)
    model = _repo(
        tmp_path,
        ("fabric/devices.yaml", "mgmt_ip: 10.255.0.21/24", "mgmt_ip: 10.255.0.91/24"),
        ("inventory/hosts.yaml", "hostname: 10.255.0.21\n", "hostname: 10.255.0.91\n"),
        ("hosts/hosts.yaml", "mgmt_ip: 10.255.0.101/24", "mgmt_ip: 10.255.0.102/24"),
        ("hosts/hosts.yaml", "lintas@10.255.0.101/", "lintas@10.255.0.102/"),
        ("hosts/hosts.yaml", "tcp:10.255.0.101:6640", "tcp:10.255.0.102:6640"),
        ("inventory/hosts.yaml", "hostname: 10.255.0.101\n", "hostname: 10.255.0.102\n"),
    )
    conns = device_conns(model, _settings(home), ["leaf-01", "leaf-02"])
    assert conns["leaf-02"].source == "lab"  # built by the lab, same address
    leaf1 = conns["leaf-01"]
    assert leaf1.hostname == "10.255.0.91"
    assert leaf1.source == "inventory" and leaf1.key_file != LabPaths(home).key and leaf1.username == "lintas"
    host = host_conns(
        model, _settings(home, key_file=tmp_path / "op-key", known_hosts=tmp_path / "op-known"), ["kvm-uat-01"]
    )["kvm-uat-01"]
    assert (host.source, host.key_file) == ("settings", tmp_path / "op-key")


def test_a_lab_device_name_never_matches_a_host_of_the_same_name(tmp_path: Path) -> None:
    src = RegisteredSource.load(registration_file(_lab_home(tmp_path), "lab"))
    assert src.login(Target("leaf-01", "10.255.0.21", "host")) is None
    assert src.login(Target("leaf-01", "10.255.0.21", "device")) is not None


def test_the_lab_source_disabled_is_never_consulted(tmp_path: Path) -> None:
    home = _lab_home(tmp_path)
    assert credential_sources(_settings(home, use_lab=False)) == []
    conns = device_conns(_repo(tmp_path), _settings(home, use_lab=False), ["leaf-01"])
    assert conns["leaf-01"].source == "inventory"


def test_configured_groups_match_by_name_inventory_group_and_network(tmp_path: Path) -> None:
    spines = CredentialGroup(
        name="spines",
        groups=["spine"],
        key_file=tmp_path / "spine-key",
        known_hosts=tmp_path / "fabric-known",
        username="netops",
    )
    leaves = CredentialGroup(
        name="leaves", targets=["leaf-0[12]"], networks=["10.255.0.0/26"], password="env:FABRIC_SSH_PASSWORD"
    )
    hosts = CredentialGroup(
        name="hv",
        networks=["10.255.0.96/27"],
        key_file=tmp_path / "hv-key",
        known_hosts=tmp_path / "hv-known",
        username="lintas",
    )
    s = _settings(tmp_path / "home", credentials=[spines, leaves, hosts], use_lab=False)
    model = _repo(tmp_path, ("inventory/defaults.yaml", "      private_key: file:/etc/lintas/ssh/id_ed25519\n", ""))
    conns = device_conns(model, s, ["spine-01", "leaf-01", "leaf-02", "leaf-03"])
    assert (conns["spine-01"].source, conns["spine-01"].username, conns["spine-01"].key_file) == (
        "credentials:spines",
        "netops",
        tmp_path / "spine-key",
    )
    assert (conns["leaf-01"].source, conns["leaf-01"].key_file, conns["leaf-01"].password_ref) == (
        "credentials:leaves",
        None,
        "env:FABRIC_SSH_PASSWORD",
    )
    assert conns["leaf-03"].source == "inventory"  # no group: the inventory, as before
    h = host_conns(load_model(TEMPLATE), s, ["kvm-uat-01"])["kvm-uat-01"]
    assert (h.source, h.ssh_user, h.key_file, h.known_hosts) == (
        "credentials:hv",
        "lintas",
        tmp_path / "hv-key",
        tmp_path / "hv-known",
    )
    nova = CredentialGroup(
        name="nova", groups=["openstack"], key_file=tmp_path / "nova-key", known_hosts=tmp_path / "nova-known"
    )
    by_group = host_conns(
        load_model(TEMPLATE),
        _settings(
            tmp_path / "home", credentials=[nova], use_lab=False, key_file=tmp_path / "k", known_hosts=tmp_path / "kh"
        ),
        ["kvm-uat-01", "osc-01"],
    )
    assert (by_group["osc-01"].source, by_group["osc-01"].key_file) == ("credentials:nova", tmp_path / "nova-key")
    assert by_group["kvm-uat-01"].source == "settings"


def test_the_allow_list_refuses_before_any_source_is_asked(tmp_path: Path) -> None:
    """Neither the lab's registration nor a catch-all group lets a deploy leave the allowed networks."""
    home = _lab_home(tmp_path)
    every = CredentialGroup(name="everything", key_file=tmp_path / "k", known_hosts=tmp_path / "kh", username="x")
    s = _settings(home, credentials=[every], allowed_networks=["10.255.0.0/28"])  # the spines only
    with pytest.raises(ConnectError, match="leaf-01: management address 10.255.0.21 is outside the allowed networks"):
        device_conns(_repo(tmp_path), s, ["spine-01", "leaf-01"])
    assert device_conns(_repo(tmp_path), s, ["spine-01"])["spine-01"].source == "lab"
    with pytest.raises(ConnectError, match="refused"):
        check_address("edge", NEVER, _settings(home, credentials=[every]))


def test_which_source_served_is_logged_never_a_secret(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = _lab_home(tmp_path)
    group = CredentialGroup(name="rest", password="env:FABRIC_SSH_PASSWORD", username="ops")
    caplog.set_level(logging.INFO, logger="lintas.workers.reach.credentials")
    sources = credential_sources(_settings(home, credentials=[group]))
    assert [s.name for s in sources] == ["lab", "credentials:rest"]
    assert find_login(Target("leaf-01", "10.255.0.21", "device"), sources).source == "lab"  # type: ignore[union-attr]
    assert find_login(Target("edge-9", "10.255.0.50", "device"), sources).source == "credentials:rest"  # type: ignore[union-attr]
    assert "device leaf-01 (10.255.0.21): login from lab" in caplog.text
    assert "device edge-9 (10.255.0.50): login from credentials:rest" in caplog.text
    assert "FABRIC_SSH_PASSWORD" not in caplog.text and "id_ed25519" not in caplog.text


def test_a_configured_password_must_be_a_reference_and_is_never_echoed() -> None:
    with pytest.raises(ValidationError) as exc:
        CredentialGroup(name="bad", password="hunter2-Plain-Secret")
    assert "hunter2-Plain-Secret" not in str(exc.value)
    with pytest.raises(ValidationError):
        CredentialGroup(name="bad", usernme="typo")  # type: ignore[call-arg]
    assert CredentialGroup(name="ok", password="file:/etc/lintas/pw").password == "file:/etc/lintas/pw"


def test_credentials_come_from_the_environment_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "LINTAS_DEPLOY__CREDENTIALS",
        json.dumps(
            [
                {
                    "name": "leaves",
                    "targets": ["leaf-*"],
                    "key_file": "/etc/lintas/ssh/leaf",
                    "known_hosts": "/etc/lintas/kh",
                }
            ]
        ),
    )
    monkeypatch.setenv("LINTAS_DEPLOY__USE_LAB", "false")
    s = Settings(home=tmp_path)
    assert not s.deploy.use_lab
    assert [ConfiguredSource(g).name for g in s.deploy.credentials] == ["credentials:leaves"]


def test_a_registration_under_another_name_is_refused(tmp_path: Path) -> None:
    home = _lab_home(tmp_path)
    path = registration_file(home, "lab")
    path.write_text(path.read_text().replace('"source": "lab"', '"source": "other"'))
    with pytest.raises(ConnectError, match="registers 'other'"):
        credential_sources(_settings(home))
    assert lab_registration  # the function the lab writes with (imported for the reader)
