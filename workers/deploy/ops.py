"""Blocking per-device operations, run by :class:`~workers.deploy.fleet.Fleet` in nornir threads."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Applied:
    changed: bool
    diff: str
    checkpoint: str | None


def apply(driver: Any, name: str, *, bundles: dict[str, dict[str, str]], revert_in: int, message: str,
          fence: Callable[[str], None]) -> Applied:
    """Load the replace candidate; if it differs, check our lease and commit with a revert timer."""
    driver.load_replace_candidate(config=bundles[name])
    diff = driver.compare_config()
    if not diff.strip():
        driver.discard_config()
        return Applied(False, "", None)
    fence(name)
    driver.commit_config(message=message, revert_in=revert_in)
    return Applied(True, diff, checkpoint_of(driver))


def checkpoint_of(driver: Any) -> str | None:
    applied = driver.get_kernel_facts().get("applied") or {}
    ckpt = applied.get("checkpoint")
    return str(ckpt) if ckpt else None


def bgp_health(driver: Any, name: str, *, peers: dict[str, list[str]]) -> list[str]:
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


def confirm(driver: Any, name: str) -> str:
    driver.confirm_commit()
    return "confirmed"


def restore(driver: Any, name: str, *, checkpoints: dict[str, str | None]) -> str:
    """Undo this run's commit on one device: ``rolled_back`` or ``reverted`` (the timer did it)."""
    if driver.has_pending_commit():
        driver.rollback()
        return "rolled_back"
    ours = checkpoints.get(name)
    if ours is not None and checkpoint_of(driver) == ours:
        driver.rollback()  # confirmed already (or committed without a timer): restore explicitly
        return "rolled_back"
    return "reverted"


def running_fingerprint(driver: Any, name: str) -> str:
    """SHA-256 of the device's running state as ``get_config`` shows it (FRR running config plus
    the managed Linux side): recorded when a deploy is confirmed, so that a drift scan can
    tell "nothing changed" from one cheap read and run the full compare only otherwise."""
    running = str(driver.get_config(retrieve="running")["running"])
    return "sha256:" + hashlib.sha256(running.encode()).hexdigest()


def pending(driver: Any, name: str) -> bool:
    return bool(driver.has_pending_commit())
