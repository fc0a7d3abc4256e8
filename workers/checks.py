"""One check of a target against the model, with what was expected and what was observed.

Neutral ground: the fabric's checks (:mod:`workers.deploy.checks`) and the hypervisor hosts'
(:mod:`workers.hosts.ops`) record the same structure, so neither package imports the other.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

CheckName = Literal[
    "bgp",
    "rib",
    "vni",
    "l3vni",
    "interface",
    "ping",
    "ping-df",
    "reachable",
    "ovs",
    "ovs-health",
    "address",
    "domain",
    "uplink",
]  # the last five: hypervisor hosts (workers.hosts)


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str
    check: CheckName
    subject: str
    passed: bool | None  # None: not applicable on this device
    expected: Any = None
    observed: Any = None
    note: str = ""
