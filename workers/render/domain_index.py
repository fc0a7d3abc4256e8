"""What a host's domains should be (``domains.json`` / ``expected.json``), and how a domain differs from it.

A :class:`DomainIndex` lists every instance placed on a host with its power state, flavor,
memory, vCPUs and NICs (rendered by :mod:`workers.render.hosts`). :func:`domain_mismatches`
compares a defined domain with its entry, field by field, as :class:`Mismatch` values: render
checks its own XML with it, verify (:func:`workers.hosts.domains.check`) and drift check the
domains on the host. The MAC of a NIC is compared in one place, :func:`same_mac`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from lintas.workers.render.domain import DomainFacts, InterfaceFacts

PowerState = Literal["running", "stopped", "absent"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectedFlavor(_Strict):
    name: str
    vcpus: int
    ram_mib: int
    disk_gb: int
    swap_mib: int
    ephemeral_gb: int


class ExpectedNic(_Strict):
    network: str
    mac: str
    bridge: str
    model: str
    port_id: str | None  # the OVS iface-id / neutron port; None where nova/neutron choose it
    target_dev: str | None
    mtu: int | None


class ExpectedDomain(_Strict):
    name: str
    uuid: str
    state: PowerState
    project: str
    owner: str
    flavor: ExpectedFlavor
    memory_kib: int
    vcpus: int
    nics: list[ExpectedNic]
    xml: str | None = None  # artifact name of the domain XML (Lintas-owned, not absent)


class DomainIndex(_Strict):
    schema_version: Literal[1] = 1
    host: str
    kind: Literal["kvm", "openstack"]
    managed_by: Literal["lintas", "nova"]
    domain_type: str | None  # what Lintas defines; None on nova hosts
    domains: list[ExpectedDomain]

    def by_uuid(self) -> dict[str, ExpectedDomain]:
        return {d.uuid: d for d in self.domains}


def load_domain_index(text: str | bytes) -> DomainIndex:
    return DomainIndex.model_validate_json(text)


# -- comparing -----------------------------------------------------------------------------

DomainField = Literal["uuid", "name", "memory KiB", "vcpus", "flavor", "interfaces"]
NicField = Literal["mac", "bridge", "virtualport", "model", "interfaceid"]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One way a defined domain differs from the model: ``field`` of the domain, or of NIC ``nic``."""

    field: DomainField | NicField
    want: object
    have: object
    nic: int | None = None  # the NIC's index, for the NIC fields

    def __str__(self) -> str:
        what = self.field if self.nic is None else f"interface {self.nic} {self.field}"
        return f"{what}: {self.want} != {self.have}"


def same_mac(want: str | None, have: str | None) -> bool:
    """The one MAC comparison of Lintas (the domain's NIC, the OVS port's ``attached-mac``): case aside."""
    return (want or "").lower() == (have or "").lower() and (want is None) == (have is None)


def nic_mismatches(i: int, want: ExpectedNic, got: InterfaceFacts) -> list[Mismatch]:
    """How NIC ``i`` of a domain differs from the model's: MAC, bridge, virtualport, model, interface id."""
    out = []
    if not same_mac(want.mac, got.mac):
        out.append(Mismatch("mac", want.mac, got.mac, i))
    pairs: list[tuple[NicField, object, object]] = [
        ("bridge", want.bridge, got.bridge),
        ("virtualport", "openvswitch", got.virtualport_type),
        ("model", want.model, got.model),
    ]
    if want.port_id is not None:
        pairs.append(("interfaceid", want.port_id, got.interfaceid))
    out += [Mismatch(f, w, h, i) for f, w, h in pairs if w != h]
    return out


def domain_mismatches(expected: ExpectedDomain, facts: DomainFacts, *, nics: bool = True) -> list[Mismatch]:
    """What a defined domain gets wrong against the model; with ``nics=False`` only the domain's own
    fields (uuid, name, memory, vCPUs, flavor), not its interfaces.

    The MAC check of verify and drift, for both kinds of host. The domain name is
    compared only for Lintas-owned domains (nova names them ``instance-XXXXXXXX``).
    """
    pairs: list[tuple[DomainField, object, object]] = [("uuid", expected.uuid, facts.uuid)]
    if facts.managed_by != "nova":
        pairs.append(("name", expected.name, facts.name))
    pairs += [("memory KiB", expected.memory_kib, facts.memory_kib), ("vcpus", expected.vcpus, facts.vcpus)]
    if facts.flavor is not None and facts.flavor.name is not None:
        pairs.append(("flavor", expected.flavor.name, facts.flavor.name))
    if nics:
        pairs.append(("interfaces", len(expected.nics), len(facts.interfaces)))
    out = [Mismatch(f, w, h) for f, w, h in pairs if w != h]
    if nics:
        for i, (nic, got) in enumerate(zip(expected.nics, facts.interfaces, strict=False)):
            out += nic_mismatches(i, nic, got)
    return out


def check_domain(expected: ExpectedDomain, facts: DomainFacts) -> list[str]:
    """:func:`domain_mismatches` as text, ``"<what>: <expected> != <actual>"`` each."""
    return [str(m) for m in domain_mismatches(expected, facts)]
