"""The lab's own credential source: ``lintas lab up`` registers the switches and hosts it built.

The registration (``$LINTAS_HOME/credentials.d/lab.json``, :mod:`workers.reach.credentials`)
lists each target with its management address and the lab's key pair and known_hosts, so a
deploy uses the lab's login only for a target the lab built, matched by name and address.
``lintas lab down`` removes it.
"""

from __future__ import annotations

from lintas.workers.lab.paths import LabPaths
from lintas.workers.lab.ssh import USER
from lintas.workers.lab.state import LabState
from lintas.workers.lab.topology import SSH_PORT
from lintas.workers.reach.credentials import (
    LAB_SOURCE,
    RegisteredTarget,
    Registration,
    remove_registration,
    twin_source_name,
    write_registration,
)


def lab_registration(paths: LabPaths, state: LabState, source: str = LAB_SOURCE) -> Registration:
    """The registration of the lab (or of a twin: its targets carry its management namespace)."""
    namespace = paths.instance.mgmt_namespace

    def target(name: str, kind: str, mgmt_ip: str) -> RegisteredTarget:
        return RegisteredTarget.model_validate({
            "name": name, "kind": kind, "address": mgmt_ip.split("/", 1)[0], "username": USER,
            "key_file": paths.key, "known_hosts": paths.known_hosts, "port": SSH_PORT, "namespace": namespace,
        })  # fmt: skip

    targets = [target(r.name, "device", r.mgmt_ip) for r in state.switches.values()]
    targets += [target(r.name, "host", r.mgmt_ip) for r in state.hosts.values() if r.mgmt_ip]
    return Registration(source=source, targets=sorted(targets, key=lambda t: (t.kind, t.name)))


def register_twin(paths: LabPaths, state: LabState, twin: str) -> None:
    write_registration(paths.home, lab_registration(paths, state, twin_source_name(twin)))


def unregister_twin(paths: LabPaths, twin: str) -> bool:
    return remove_registration(paths.home, twin_source_name(twin))


def register_lab(paths: LabPaths, state: LabState) -> None:
    write_registration(paths.home, lab_registration(paths, state))


def unregister_lab(paths: LabPaths) -> bool:
    return remove_registration(paths.home, LAB_SOURCE)
