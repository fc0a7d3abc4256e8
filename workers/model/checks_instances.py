"""Semantic checks of instances: references, MAC addresses, placement capacity."""

from __future__ import annotations

from uuid import UUID

from lintas.workers.model.draft import Draft
from lintas.workers.model.primitives import mac_is_multicast
from lintas.workers.model.source import Origin

_ZERO_MAC = "00:00:00:00:00:00"


def check_instances(draft: Draft) -> None:  # noqa: C901 - a flat list of independent rules
    macs: dict[str, tuple[str, int, Origin]] = {}
    uuids: dict[UUID, tuple[str, Origin]] = {}
    vcpus: dict[str, int] = {}
    memory: dict[str, int] = {}
    full: set[tuple[str, str]] = set()
    for name, inst in draft.instances.items():
        origin = draft.origin("instance", name)
        if (first := uuids.get(inst.uuid)) is not None:
            draft.add(
                "instance",
                name,
                f"duplicate instance uuid {inst.uuid}: already used by '{first[0]}' ({first[1].where('uuid')})",
                "uuid",
            )
        else:
            uuids[inst.uuid] = (name, origin)
        flavor = draft.flavors.get(inst.flavor)
        if flavor is None and not draft.is_broken("flavor", inst.flavor):
            draft.add("instance", name, f"unknown flavor '{inst.flavor}'", "flavor")
        host = draft.r_hosts.get(inst.host)
        if host is None and inst.host not in draft.hosts and not draft.is_broken("host", inst.host):
            draft.add("instance", name, f"unknown host '{inst.host}'", "host")
        live = inst.state != "absent"
        for index, nic in enumerate(inst.nics):
            if host is not None:
                trunked = nic.network in host.uplink.networks
                if nic.network not in draft.networks and not draft.is_broken("network", nic.network):
                    draft.add("instance", name, f"unknown network '{nic.network}'", "nics", index, "network")
                elif not trunked and nic.network in draft.networks:
                    draft.add(
                        "instance",
                        name,
                        f"network '{nic.network}' is not trunked to host '{host.name}' "
                        "(add it to the host's uplink.networks)",
                        "nics",
                        index,
                        "network",
                    )
                bridges = {host.ovs.integration_bridge, *host.ovs.bridges}
                if nic.bridge not in bridges:
                    draft.add(
                        "instance",
                        name,
                        f"host '{host.name}' has no OVS bridge '{nic.bridge}'",
                        "nics",
                        index,
                        "bridge",
                    )
            elif nic.network not in draft.networks and not draft.is_broken("network", nic.network):
                draft.add("instance", name, f"unknown network '{nic.network}'", "nics", index, "network")
            if not live:
                continue
            if mac_is_multicast(nic.mac):
                draft.add(
                    "instance",
                    name,
                    f"MAC {nic.mac} is a multicast address; instance NICs need a unicast MAC",
                    "nics",
                    index,
                    "mac",
                )
            elif nic.mac == _ZERO_MAC:
                draft.add("instance", name, f"MAC {nic.mac} is not a usable address", "nics", index, "mac")
            elif (other := macs.get(nic.mac)) is not None:
                draft.add(
                    "instance",
                    name,
                    f"duplicate MAC {nic.mac}: already used by instance '{other[0]}' nics[{other[1]}] "
                    f"({other[2].where('nics', other[1], 'mac')})",
                    "nics",
                    index,
                    "mac",
                )
            else:
                macs[nic.mac] = (name, index, origin)
        if not live or host is None or flavor is None:
            continue
        vcpus[host.name] = used_cpu = vcpus.get(host.name, 0) + flavor.vcpus
        memory[host.name] = used_mem = memory.get(host.name, 0) + flavor.ram_mib
        if used_cpu > host.vcpu_limit and (host.name, "cpu") not in full:
            full.add((host.name, "cpu"))
            draft.add(
                "instance",
                name,
                f"instance does not fit on host '{host.name}': {used_cpu} vCPUs placed, the limit is "
                f"{host.vcpu_limit:g} ({host.capacity.vcpus} vCPUs x cpu_allocation_ratio {host.cpu_allocation_ratio:g})",
                "host",
            )
        if used_mem > host.memory_limit_mib and (host.name, "ram") not in full:
            full.add((host.name, "ram"))
            cap = host.capacity
            draft.add(
                "instance",
                name,
                f"instance does not fit on host '{host.name}': {used_mem} MiB of memory placed, the limit is "
                f"{host.memory_limit_mib:g} MiB (({cap.memory_mib} - {cap.reserved_memory_mib} reserved) "
                f"x ram_allocation_ratio {host.ram_allocation_ratio:g})",
                "host",
            )
