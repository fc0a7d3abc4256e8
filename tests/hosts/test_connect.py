"""workers.hosts.connect: how Lintas reaches a host, and what it refuses before sending anything."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from lintas.engine.settings import DeploySettings, Settings
from lintas.workers.deploy.connect import ConnectError
from lintas.workers.hosts.connect import host_conns, libvirt_uri

from .helpers import template_model

KEY, KNOWN = Path("/etc/lintas/id_ed25519"), Path("/etc/lintas/known_hosts")


def test_ssh_uri_goes_through_libssh_with_the_key_and_strict_known_hosts() -> None:
    uri, host, port = libvirt_uri(
        "qemu+ssh://lintas@10.255.0.111/system?readonly=1", user=None, key_file=KEY, known_hosts=KNOWN
    )
    parts = urlsplit(uri)
    assert (parts.scheme, parts.username, parts.hostname, parts.path, host, port) == (
        "qemu+libssh",
        "lintas",
        "10.255.0.111",
        "/system",
        "10.255.0.111",
        22,
    )
    q = parse_qs(parts.query)
    assert q == {
        "keyfile": [str(KEY)],
        "known_hosts": [str(KNOWN)],
        "known_hosts_verify": ["normal"],
        "sshauth": ["privkey"],
    }  # readonly=1 is not a libvirt parameter: read-only is how it is opened


def test_repo_cannot_smuggle_transport_parameters() -> None:
    uri, _h, _p = libvirt_uri(
        "qemu+ssh://x@10.255.0.1/system?no_verify=1&command=/bin/evil&keyfile=/root/k",
        user="lintas",
        key_file=KEY,
        known_hosts=KNOWN,
    )
    q = parse_qs(urlsplit(uri).query)
    assert "no_verify" not in q and "command" not in q and q["keyfile"] == [str(KEY)]
    assert urlsplit(uri).username == "lintas"  # the configured login wins


def test_ssh_uri_without_known_hosts_is_refused() -> None:
    with pytest.raises(ConnectError, match="known_hosts"):
        libvirt_uri("qemu+ssh://lintas@10.255.0.1/system", user=None, key_file=KEY, known_hosts=None)


def settings(tmp_path: Path, **deploy: object) -> Settings:
    return Settings(home=tmp_path, deploy=DeploySettings(use_lab=False, key_file=KEY, known_hosts=KNOWN, **deploy))


def test_template_hosts_resolve(tmp_path: Path) -> None:
    conns = host_conns(template_model(), settings(tmp_path), ["kvm-uat-01", "osc-01"])
    assert conns["osc-01"].readonly and not conns["kvm-uat-01"].readonly  # nova's host: read-only, always
    assert conns["kvm-uat-01"].ovsdb == "tcp:10.255.0.101:6640"
    assert conns["kvm-uat-01"].libvirt_display == "qemu+libssh://lintas@10.255.0.101/system"
    assert (conns["osc-01"].ssh_user, conns["osc-01"].address) == ("lintas", "10.255.0.111")


def test_addresses_outside_the_allowed_networks_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConnectError, match="outside the allowed networks") as exc:
        host_conns(template_model(), settings(tmp_path, allowed_networks=["198.51.100.0/24"]), ["kvm-uat-01", "osc-01"])
    assert "kvm-uat-01" in str(exc.value) and "osc-01" in str(exc.value)  # every problem, at once
