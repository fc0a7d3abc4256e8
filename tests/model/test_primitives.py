from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from lintas.workers.model.overhead import overhead
from lintas.workers.model.primitives import Mac, Network, PortSpec, SecretRef, expand_ports, mac_is_multicast


def test_port_ranges_expand_on_the_last_number() -> None:
    assert expand_ports(["swp1-3", "eth0", "Ethernet49/1-2"]) == [
        "swp1",
        "swp2",
        "swp3",
        "eth0",
        "Ethernet49/1",
        "Ethernet49/2",
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("swp9-1", "invalid port range 'swp9-1': 1 is below 9"),
        ("swp1-5000", "port range 'swp1-5000' is too large (more than 1024 ports)"),
    ],
)
def test_bad_port_ranges(spec: str, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        TypeAdapter(PortSpec).validate_python(spec)
    assert message in str(exc.value)


def test_macs_are_normalised() -> None:
    assert TypeAdapter(Mac).validate_python("FA-16-3E-00-00-0A") == "fa:16:3e:00:00:0a"
    assert mac_is_multicast("01:00:5e:00:00:01") and not mac_is_multicast("fa:16:3e:00:00:01")


@pytest.mark.parametrize("ref", ["env:FABRIC_BGP_PASSWORD", "file:/run/secrets/bgp"])
def test_secret_references(ref: str) -> None:
    assert TypeAdapter(SecretRef).validate_python(ref) == ref


@pytest.mark.parametrize("value", ["hunter2", "env:", "env:1BAD", "file:", 1234])
def test_inline_secrets_are_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(SecretRef).validate_python(value)


def test_networks_must_not_have_host_bits() -> None:
    assert str(TypeAdapter(Network).validate_python("10.0.0.0/24")) == "10.0.0.0/24"
    with pytest.raises(ValidationError, match="did you mean 10.0.0.0/24"):
        TypeAdapter(Network).validate_python("10.0.0.1/24")


def test_encapsulation_overheads() -> None:
    assert (overhead("vxlan", 4), overhead("vxlan", 6)) == (50, 70)
    assert (overhead("geneve", 4), overhead("geneve", 6)) == (58, 78)
