"""The switch driver as Lintas uses it: the napalm lifecycle methods and getters, typed.

:class:`DeviceDriver` is the boundary between deploy/verify/rollback and a napalm driver
(the FRR driver in :mod:`workers.drivers.frr` implements it structurally; nornir hands the
connection over untyped, so the operations in :mod:`workers.deploy.ops` declare it).

The two Lintas extensions that carry commit-confirm state come back as plain dicts, as napalm
getters do; :func:`kernel_facts` and :func:`pending_commit_info` read them at the boundary
into the TypedDicts below (validated: a driver that answers something else fails the device
with the field, instead of a ``KeyError`` deep in a decision).
"""

from __future__ import annotations

from typing import Any, NotRequired, Protocol

from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic validates only this one on Python < 3.12


class KernelCapabilities(TypedDict, total=False):
    """What the switch's kernel can build (probed by the driver)."""

    vrf: bool
    vlan: bool
    vlan_filtering: bool
    vxlan: bool
    kernel: str
    mode: str  # vlan_aware | traditional


class AppliedFacts(TypedDict, total=False):
    """What the last commit built here: its checkpoint and message, and what this kernel could not carry."""

    mode: str | None
    unsupported_on_this_kernel: list[str]
    adaptations: list[str]
    checkpoint: str | None
    message: str | None
    committed_at: int | None


class CandidateFacts(TypedDict, total=False):
    """What the loaded candidate would lose or build differently on this kernel."""

    mode: str | None
    unsupported_on_this_kernel: list[str]
    adaptations: list[str]


class KernelFacts(TypedDict, total=False):
    """``get_kernel_facts()``: the kernel mode and capabilities, the last commit, the candidate."""

    mode: str
    capabilities: KernelCapabilities
    applied: AppliedFacts | None
    candidate: CandidateFacts | None


class PendingCommitInfo(TypedDict):
    """``get_pending_commit()``: a commit awaiting confirmation, and its message (naming the run)."""

    status: str  # pending (timer alive) | stale (no live timer) | reverting
    checkpoint: NotRequired[str | None]
    message: NotRequired[str]
    created_at: NotRequired[int | None]
    revert_in: NotRequired[int | None]
    deadline: NotRequired[int | None]
    seconds_left: NotRequired[int | None]


class FabricReader(Protocol):
    """What verification reads of a switch: napalm getters and pings, and the kernel facts."""

    # getters (napalm)
    def get_bgp_neighbors(self) -> dict[str, dict[str, Any]]: ...
    def get_interfaces(self) -> dict[str, dict[str, Any]]: ...
    def get_ipv4_routes(self) -> dict[str, dict[str, Any]]: ...
    def get_evpn_vnis(self) -> dict[int, dict[str, Any]]: ...
    def ping(
        self,
        destination: str,
        source: str = "",
        ttl: int = 255,
        timeout: int = 2,
        size: int = 100,
        count: int = 5,
        vrf: str = "",
        source_interface: str = "",
    ) -> dict[str, Any]: ...
    def ping_df(
        self, destination: str, source: str = "", size: int = 100, count: int = 3, timeout: int = 2
    ) -> dict[str, Any]: ...

    def get_kernel_facts(self) -> dict[str, Any]: ...


class DeviceDriver(FabricReader, Protocol):
    """The napalm ``NetworkDriver`` methods Lintas calls, plus the FRR driver's commit-confirm extensions."""

    # the configuration lifecycle (napalm)
    def load_replace_candidate(self, filename: str | None = None, config: str | None = None) -> None: ...
    def compare_config(self) -> str: ...
    def discard_config(self) -> None: ...
    def commit_config(self, message: str = "", revert_in: int | None = None) -> None: ...
    def has_pending_commit(self) -> bool: ...
    def confirm_commit(self) -> None: ...
    def rollback(self) -> None: ...
    def get_config(
        self, retrieve: str = "all", full: bool = False, sanitized: bool = False, format: str = "text"
    ) -> dict[str, str]: ...

    # Lintas's extensions (read them through kernel_facts() and pending_commit_info())
    def get_pending_commit(self) -> dict[str, Any] | None: ...


class DriverAnswerError(RuntimeError):
    """A driver answered a Lintas extension with something that is not its documented shape."""


_KERNEL: TypeAdapter[KernelFacts] = TypeAdapter(KernelFacts)
_PENDING: TypeAdapter[PendingCommitInfo | None] = TypeAdapter(PendingCommitInfo | None)


def _read(adapter: TypeAdapter[Any], value: object, what: str) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise DriverAnswerError(f"{what}: {first['msg']} at {'.'.join(map(str, first['loc'])) or '(root)'}") from None


def kernel_facts(driver: DeviceDriver) -> KernelFacts:
    """The driver's kernel facts, typed (keys it does not report are absent, never guessed)."""
    facts: KernelFacts = _read(_KERNEL, driver.get_kernel_facts(), "get_kernel_facts")
    return facts


def pending_commit_info(driver: DeviceDriver) -> PendingCommitInfo | None:
    """The commit awaiting confirmation on the device, typed; None when there is none."""
    info = driver.get_pending_commit()
    if not info:
        return None
    pending: PendingCommitInfo = _read(_PENDING, info, "get_pending_commit")
    return pending


__all__ = [
    "AppliedFacts",
    "CandidateFacts",
    "DeviceDriver",
    "DriverAnswerError",
    "KernelCapabilities",
    "KernelFacts",
    "PendingCommitInfo",
    "kernel_facts",
    "pending_commit_info",
]
