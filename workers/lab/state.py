"""``$LINTAS_HOME/lab/state.json``: what the lab built, for status, down and the deploy driver.

It is written before anything is created (the intent) and again when ``up`` is done, so
``down`` after a crash at any point knows every namespace to remove; ``down`` also
sweeps by the ``lx`` name prefix, so a lost or corrupt state file loses nothing.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from lintas.workers.lab.paths import LabPaths
from lintas.workers.lab.topology import LabPlan

STATE_VERSION = 1


class SwitchRecord(BaseModel):
    name: str
    role: str
    namespace: str
    mgmt_ip: str  # with prefix: "10.255.0.21/24"
    mgmt_veth: str


class HostRecord(BaseModel):
    name: str
    namespace: str
    nic: str
    leaf: str
    leaf_port: str
    kind: str = "kvm"
    mgmt_ip: str = ""  # with prefix: "10.255.0.101/24"
    mgmt_veth: str = ""
    domain_type: str = "kvm"


class LabState(BaseModel):
    version: int = STATE_VERSION
    phase: Literal["building", "up"] = "building"
    home: str
    repo: str
    bridge: str
    mgmt_subnet: str
    mgmt_gateway: str
    daemons: list[str]
    switches: dict[str, SwitchRecord]
    hosts: dict[str, HostRecord] = {}
    skipped: list[tuple[str, str]] = []
    fingerprints: dict[str, str] = {}  # namespace -> LabPlan.fingerprint: what `up` built there
    created_paths: list[str] = []  # system directories the lab had to create (e.g. /run/sshd)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def namespaces(self) -> list[str]:
        return [s.namespace for s in self.switches.values()] + [h.namespace for h in self.hosts.values()]


def state_from_plan(plan: LabPlan, paths: LabPaths, repo: Path, daemons: tuple[str, ...]) -> LabState:
    return LabState(
        home=str(paths.home),
        repo=str(repo),
        bridge=plan.bridge,
        mgmt_subnet=plan.mgmt_subnet,
        mgmt_gateway=plan.mgmt_gateway,
        daemons=list(daemons),
        switches={
            s.name: SwitchRecord(
                name=s.name, role=s.role, namespace=s.namespace, mgmt_ip=s.mgmt_ip, mgmt_veth=s.mgmt_veth
            )
            for s in plan.switches
        },
        hosts={
            h.name: HostRecord(
                name=h.name,
                namespace=h.namespace,
                nic=h.nic,
                leaf=h.leaf,
                leaf_port=h.leaf_port,
                kind=h.kind,
                mgmt_ip=h.mgmt_ip,
                mgmt_veth=h.mgmt_veth,
                domain_type=h.domain_type,
            )
            for h in plan.hosts
        },
        skipped=list(plan.skipped),
        fingerprints={n: plan.fingerprint(n) for n in plan.namespaces},
    )


def load_state(paths: LabPaths) -> LabState | None:
    """The recorded state, or None when there is none or it cannot be read."""
    try:
        return LabState.model_validate_json(paths.state_file.read_text())
    except (OSError, ValidationError, ValueError):
        return None


def save_state(paths: LabPaths, state: LabState) -> None:
    paths.lab_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state.updated_at = datetime.now(UTC)
    tmp = paths.state_file.with_suffix(".tmp")
    tmp.write_text(state.model_dump_json(indent=2) + "\n")
    os.replace(tmp, paths.state_file)


def read_owner(paths: LabPaths) -> str | None:
    try:
        home = json.loads(paths.owner_file.read_text()).get("home")
    except (OSError, ValueError, AttributeError):
        return None
    return home if isinstance(home, str) else None


def write_owner(paths: LabPaths) -> None:
    paths.run_root.mkdir(mode=0o755, parents=True, exist_ok=True)
    paths.owner_file.write_text(json.dumps({"home": str(paths.home), "pid": os.getpid()}) + "\n")
