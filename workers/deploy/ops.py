"""Blocking per-device operations, run by :class:`~workers.deploy.fleet.Fleet` in nornir threads."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict, Unpack

from lintas.workers.devices import DeviceDriver, kernel_facts, pending_commit_info


@dataclass(frozen=True, slots=True)
class Applied:
    changed: bool
    diff: str
    checkpoint: str | None
    resumed: bool = False  # a pending commit this run made before a crash: adopted, not made again
    seconds_left: int | None = None  # on the device's timer, when resumed


@dataclass(frozen=True, slots=True)
class PendingCommit:
    """A commit awaiting confirmation on a device, and the run that made it (None: unknown origin)."""

    status: str  # pending (timer alive) | stale (no live timer) | reverting
    checkpoint: str | None
    run_id: str | None
    seconds_left: int | None

    def describe(self) -> str:
        who = f"run {self.run_id}" if self.run_id else "unknown origin (not a Lintas run)"
        left = f", {self.seconds_left} s left on its revert timer" if self.seconds_left is not None else ""
        return f"an unconfirmed commit ({self.status}) of {who}{left}"


class ForeignCommitError(Exception):
    """A device holds a pending commit another run (or someone else) made: never adopted, never ignored."""


_RUN_IN_MESSAGE = re.compile(r"^lintas run (r-[0-9a-f]+|\S+) ")


def commit_message(run_id: str, sha: str, repo: str, ref: str) -> str:
    """The commit's message on the device: it names the run (read back by :func:`pending_commit`)."""
    return f"lintas run {run_id} {sha[:8]} ({repo} {ref})"


def pending_commit(driver: DeviceDriver, name: str) -> PendingCommit | None:
    info = pending_commit_info(driver)
    if info is None:
        return None
    m = _RUN_IN_MESSAGE.match(info.get("message") or "")
    return PendingCommit(
        status=info["status"],
        checkpoint=info.get("checkpoint"),
        run_id=m.group(1) if m else None,
        seconds_left=info.get("seconds_left"),
    )


def commit_state(driver: DeviceDriver, name: str) -> tuple[PendingCommit | None, str | None]:
    """The pending commit (if any) and the checkpoint the device runs (its last commit's)."""
    return pending_commit(driver, name), checkpoint_of(driver)


class CommitArgs(TypedDict):
    """How :func:`apply` commits: the device-side timer, the message (it names the run), the run."""

    revert_in: int
    message: str
    run_id: str


def apply(
    driver: DeviceDriver,
    name: str,
    *,
    bundles: dict[str, dict[str, str]],
    fence: Callable[[str], None],
    **commit: Unpack[CommitArgs],
) -> Applied:
    """Load the replace candidate; if it differs, check our lease and commit with a revert timer.

    A pending commit is looked at first: this run's own (made before a crash or a redelivery)
    is adopted as committed and awaiting verify, never mistaken for "unchanged"; anyone
    else's fails the device (:class:`ForeignCommitError`)."""
    run_id = commit["run_id"]
    pend = pending_commit(driver, name)
    if pend is not None:
        if pend.run_id != run_id or pend.status != "pending":
            raise ForeignCommitError(
                f"{name}: refused: the device holds {pend.describe()}; "
                "it must be confirmed or rolled back by its owner (or expire) first"
            )
        return Applied(
            True,
            f"(commit {pend.checkpoint} made by this run before a restart, adopted: "
            f"{pend.seconds_left} s left on its timer)",
            pend.checkpoint,
            resumed=True,
            seconds_left=pend.seconds_left,
        )
    driver.load_replace_candidate(config=json.dumps(bundles[name]))  # napalm: config is text (a JSON bundle)
    diff = driver.compare_config()
    if not diff.strip():
        driver.discard_config()
        return Applied(False, "", None)
    fence(name)
    driver.commit_config(message=commit["message"], revert_in=commit["revert_in"])
    return Applied(True, diff, checkpoint_of(driver))


def checkpoint_of(driver: DeviceDriver) -> str | None:
    applied = kernel_facts(driver).get("applied") or {}
    return applied.get("checkpoint") or None


def bgp_health(driver: DeviceDriver, name: str, *, peers: dict[str, list[str]]) -> list[str]:
    """Problems with the sessions to ``peers[name]`` (peer addresses): [] when all are Established
    with IPv4 prefixes received."""
    want = peers.get(name, [])
    have = driver.get_bgp_neighbors().get("global", {}).get("peers", {})
    problems = []
    for ip in want:
        p = have.get(ip)
        if p is None:
            problems.append(f"{ip}: no such neighbor")
        elif not p.get("is_up"):
            problems.append(f"{ip}: not Established")
        elif p.get("address_family", {}).get("ipv4", {}).get("received_prefixes", 0) == 0:
            problems.append(f"{ip}: Established but no IPv4 prefix received")
    return problems


def confirm(
    driver: DeviceDriver,
    name: str,
    *,
    run_id: str,
    checkpoints: dict[str, str | None],
    known_ours: frozenset[str] = frozenset(),
) -> str:
    """Confirm this run's commit on one device: ``confirmed``, or ``already_confirmed`` when no
    commit is pending and the device still runs this run's checkpoint (confirmed before a
    crash). Raises when the commit is gone (the timer restored it) or pending for someone else.
    ``known_ours``: devices just read holding this run's pending commit: confirmed without reading
    it again (the confirm itself takes the pending commit atomically, and fails if it is gone)."""
    if name in known_ours:
        driver.confirm_commit()
        return "confirmed"
    pend = pending_commit(driver, name)
    if pend is not None:
        if pend.run_id != run_id:
            raise ForeignCommitError(f"{name}: not confirmed: the device holds {pend.describe()}")
        driver.confirm_commit()
        return "confirmed"
    ours = checkpoints.get(name)
    if ours is not None and checkpoint_of(driver) == ours:
        return "already_confirmed"
    raise LookupError(
        f"{name}: the commit of this run is gone: the device-side timer restored the checkpoint before confirmation"
    )


def restore(driver: DeviceDriver, name: str, *, checkpoints: dict[str, str | None], run_id: str) -> str:
    """Undo this run's commit on one device: ``rolled_back``, ``reverted`` (the timer did it),
    or ``not_ours``: the pending commit there is another run's (or unknown): left alone."""
    pend = pending_commit(driver, name)
    if pend is not None:
        if pend.run_id != run_id:
            return "not_ours"
        driver.rollback()
        return "rolled_back"
    ours = checkpoints.get(name)
    if ours is not None and checkpoint_of(driver) == ours:
        driver.rollback()  # confirmed already (or committed without a timer): restore explicitly
        return "rolled_back"
    return "reverted"


def running_fingerprint(driver: DeviceDriver, name: str) -> str:
    """SHA-256 of the device's running state as ``get_config`` shows it (FRR running config plus
    the managed Linux side): recorded when a deploy is confirmed, so that a drift scan can
    tell "nothing changed" from one cheap read and run the full compare only otherwise."""
    running = str(driver.get_config(retrieve="running")["running"])
    return "sha256:" + hashlib.sha256(running.encode()).hexdigest()


def pending(driver: DeviceDriver, name: str) -> bool:
    return bool(driver.has_pending_commit())
