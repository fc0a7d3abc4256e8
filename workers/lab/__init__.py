"""The lab: the model's spine-leaf fabric and hypervisors on this machine (network namespaces,
FRR, libvirt + QEMU, Open vSwitch, sshd).

Public API::

    from lintas.workers.lab import lab_up, lab_down, lab_status, lab_device_facts, lab_host_facts, vtysh

    state = await lab_up(settings, repo)          # idempotent; needs root, FRR, openssh, libvirt, OVS
    await lab_status(settings)                    # list[DeviceStatus]
    lab_device_facts(settings, "leaf-01")         # DeviceFacts: mgmt ip, key, known_hosts, ...
    lab_host_facts(settings, "osc-01")            # HostFacts: libvirt socket, OVSDB remote, SSH, ...
    await vtysh("leaf-01", "show bgp summary json")
    nova_set_mac(settings, "osc-01", uuid, 0, "fa:16:3e:00:00:99")   # play nova behind Lintas's back
    await lab_down(settings)                      # removes everything, even after a crash

See :mod:`workers.lab.topology` (names), :mod:`workers.lab.paths` (files),
:mod:`workers.lab.netns` (network safety), :mod:`workers.lab.hypervisor` (hosts),
:mod:`workers.lab.nova` (nova's domains on openstack hosts). Names are imported lazily, so that
``lintas --help`` does not pay for the model's schemas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lintas.workers.lab.cmd import CommandError, LabError, PrerequisiteError, Tools, find_tools
    from lintas.workers.lab.frr import DAEMONS, bgp_peers, vtysh, vtysh_json
    from lintas.workers.lab.hypervisor import kvm_usable
    from lintas.workers.lab.lab import (
        DeviceFacts,
        DeviceStatus,
        DownReport,
        HostFacts,
        lab_device_facts,
        lab_down,
        lab_facts,
        lab_host_facts,
        lab_hosts_facts,
        lab_status,
        lab_up,
    )
    from lintas.workers.lab.nova import nova_domains, nova_set_mac
    from lintas.workers.lab.paths import LabPaths
    from lintas.workers.lab.state import LabState, load_state
    from lintas.workers.lab.topology import LabPlan, namespace_name, plan_lab

_WHERE = {
    "cmd": ("CommandError", "LabError", "PrerequisiteError", "Tools", "find_tools"),
    "frr": ("DAEMONS", "bgp_peers", "vtysh", "vtysh_json"),
    "hypervisor": ("kvm_usable",),
    "lab": (
        "DeviceFacts",
        "DeviceStatus",
        "DownReport",
        "HostFacts",
        "lab_device_facts",
        "lab_down",
        "lab_facts",
        "lab_host_facts",
        "lab_hosts_facts",
        "lab_status",
        "lab_up",
    ),
    "nova": ("nova_domains", "nova_set_mac"),
    "paths": ("LabPaths",),
    "state": ("LabState", "load_state"),
    "topology": ("LabPlan", "namespace_name", "plan_lab"),
}
_MODULE = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "CommandError",
    "DAEMONS",
    "DeviceFacts",
    "DeviceStatus",
    "DownReport",
    "HostFacts",
    "LabError",
    "LabPaths",
    "LabPlan",
    "LabState",
    "PrerequisiteError",
    "Tools",
    "bgp_peers",
    "find_tools",
    "kvm_usable",
    "lab_device_facts",
    "lab_down",
    "lab_facts",
    "lab_host_facts",
    "lab_hosts_facts",
    "lab_status",
    "lab_up",
    "load_state",
    "namespace_name",
    "nova_domains",
    "nova_set_mac",
    "plan_lab",
    "vtysh",
    "vtysh_json",
]


def __getattr__(name: str) -> Any:
    module = _MODULE.get(name)
    if module is None:
        raise AttributeError(f"module 'lintas.workers.lab' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lintas.workers.lab.{module}"), name)
