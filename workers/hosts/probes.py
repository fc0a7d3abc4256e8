"""A host's uplink, tested from the host: don't-fragment pings from its tunnel endpoint.

    probes = [UplinkProbe(source="10.20.0.11", destination="10.20.0.1", size=9000, what="gateway ...")]
    answers = run(conn, probes, timeout_s=20)   # one SSH round trip, every probe at once
    checks = uplink_checks(conn.name, probes, answers)

A probe is one ``ping -M do`` of ``size`` bytes (the IP packet: the uplink's MTU) from the
host's tunnel address. It proves what OVS's own state cannot: the NIC, the leaf's host port,
its VLAN, the leaf's gateway and (for tunnel peers) the fabric carry the host's full-MTU,
unfragmented frames. When the big probe gets no answer a small one (56 bytes, no DF) is sent,
so a failure says whether the path is cut or only its MTU is short.

The probes are computed from the model by the caller (the deploy package); this module only
runs them, over the host's SSH (:func:`workers.hosts.linux.ssh`), with argv quoted, never a
shell string built from input. Addresses are validated (``ipaddress``) before they are used.
"""

from __future__ import annotations

import ipaddress
import shlex
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from lintas.workers.checks import Check
from lintas.workers.hosts import linux
from lintas.workers.hosts.connect import HostConn

SMALL = 56  # bytes of ICMP payload of the fallback probe
ICMP_OVERHEAD = {4: 28, 6: 48}  # IP + ICMP headers


class UplinkProbe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str  # the host's tunnel address
    destination: str
    size: Annotated[int, Field(ge=68, le=65535)]  # the IP packet, in bytes (the MTU under test)
    what: str  # "gateway of infra-tunnel on leaf-01", "tunnel peer kvm-uat-02"

    @property
    def payload(self) -> int:
        return self.size - ICMP_OVERHEAD[ipaddress.ip_address(self.destination).version]

    @property
    def subject(self) -> str:
        return f"{self.source} → {self.destination} ({self.what})"


class ProbeAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    full: bool  # the DF probe of the full size answered
    small: bool | None  # the small probe (sent only when the full one did not answer)


def _ping(p: UplinkProbe, *, small: bool, wait_s: int) -> list[str]:
    src, dst = ipaddress.ip_address(p.source), ipaddress.ip_address(p.destination)
    size = ["-s", str(SMALL)] if small else ["-M", "do", "-s", str(p.payload)]
    return ["ping", f"-{dst.version}", "-n", "-q", "-c", "1", "-W", str(wait_s), *size, "-I", str(src), str(dst)]


def script(probes: list[UplinkProbe], *, wait_s: int = 2) -> str:
    """A POSIX shell script running every probe at once; each prints ``<index> <full rc> <small rc>``
    (``-`` when the small probe was not needed)."""
    lines = []
    for i, p in enumerate(probes):
        full, small = shlex.join(_ping(p, small=False, wait_s=wait_s)), shlex.join(_ping(p, small=True, wait_s=wait_s))
        lines.append(
            f"( if {full} >/dev/null 2>&1; then echo '{i} 0 -'; else {small} >/dev/null 2>&1; echo \"{i} 1 $?\"; fi ) &"
        )
    return "\n".join([*lines, "wait"]) + "\n"


def parse(out: str, n: int) -> list[ProbeAnswer | None]:
    """The answers of :func:`script`'s output, by probe index (None: the probe printed nothing)."""
    got: list[ProbeAnswer | None] = [None] * n
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[0].isdigit() or int(parts[0]) >= n:
            continue
        small = None if parts[2] == "-" else parts[2] == "0"
        got[int(parts[0])] = ProbeAnswer(full=parts[1] == "0", small=small)
    return got


def run(conn: HostConn, probes: list[UplinkProbe], *, timeout_s: float) -> list[ProbeAnswer | None]:
    """Every probe of ``conn``'s host at once, in one SSH round trip."""
    if not probes:
        return []
    return parse(linux.ssh(conn, ["sh", "-c", script(probes)], timeout_s=timeout_s), len(probes))


def uplink_checks(host: str, probes: list[UplinkProbe], answers: list[ProbeAnswer | None]) -> list[Check]:
    out = []
    for p, a in zip(probes, answers, strict=True):
        if a is None:
            observed = "the probe did not run"
        elif a.full:
            observed = f"answered at {p.size} bytes"
        elif a.small:
            observed = f"no answer at {p.size} bytes with DF; answers small pings: the path's MTU is short"
        else:
            observed = "no answer (not even a small ping): the path is cut"
        out.append(
            Check(
                device=host,
                check="uplink",
                subject=p.subject,
                passed=a is not None and a.full,
                expected=f"answers {p.size}-byte pings with DF",
                observed=observed,
            )
        )
    return out
