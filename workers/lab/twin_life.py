"""A twin's record, lifetime and removal (issue 18): what `lab down` needs of twins, without the build.

``/run/lintas-twin/<prefix>/twin.json`` is written (under ``/run/lintas-twin/.lock``) before
anything of the twin is built, with the building process as **holder**. A twin built with
``hold=True`` lives as long as its holder (a pipeline worker); ``lintas twin up`` clears the holder
once the twin is up, so it stays until ``lintas twin down``. A twin is **dead** when its holder is
gone (pid and start time differ) or it has no readable record; :func:`sweep_twins` (run by every
``twin up`` and by ``lab down``) removes dead twins by their prefix alone: their namespaces, every
process in them or with a mount of their directory (a builder SIGKILLed mid-build included), their
files and their credential registration. See :mod:`workers.lab.twin` for building one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

import lintas.workers.lab.netns as netns
from lintas.workers.lab.cmd import LabError, Tools
from lintas.workers.lab.paths import TWIN_ROOT, twin_paths
from lintas.workers.lab.register import unregister_twin
from lintas.workers.lab.topology import TWIN_PREFIX, Instance, is_twin_prefix, twin_instance, twin_of_namespace

LOCK_TIMEOUT_S = 120.0
RECORD = "twin.json"


class Holder(BaseModel):
    """The process a twin lives with: its pid and start time (clock ticks since boot)."""

    pid: int
    start: int


class TwinRecord(BaseModel):
    version: int = 1
    name: str
    prefix: str
    home: str
    repo: str
    phase: Literal["building", "up"] = "building"
    holder: Holder | None = None  # None once up: lives until `twin down`
    switches: list[str] = []
    hosts: list[str] = []
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def instance(self) -> Instance:
        return twin_instance(self.prefix[len(TWIN_PREFIX) :])


@dataclass(frozen=True, slots=True)
class TwinStatus:
    record: TwinRecord | None
    prefix: str
    alive: bool


# -- records and liveness ------------------------------------------------------------------------


def record_path(prefix: str, root: Path = TWIN_ROOT) -> Path:
    return root / prefix / RECORD


def load_record(prefix: str, root: Path = TWIN_ROOT) -> TwinRecord | None:
    try:
        return TwinRecord.model_validate_json(record_path(prefix, root).read_text())
    except (OSError, ValidationError, ValueError):
        return None


def save_record(record: TwinRecord, root: Path = TWIN_ROOT) -> None:
    path = record_path(record.prefix, root)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(record.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)


def _start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]) if len(fields) > 19 and fields[0] != "Z" else None


def me() -> Holder:
    pid = os.getpid()
    start = _start_ticks(pid)
    if start is None:
        raise LabError("cannot read this process's start time")
    return Holder(pid=pid, start=start)


def is_alive(record: TwinRecord | None) -> bool:
    """A twin is alive while its holder runs, or (no holder) once it is up; a twin without a
    readable record is dead."""
    if record is None:
        return False
    if record.holder is None:
        return record.phase == "up"
    return _start_ticks(record.holder.pid) == record.holder.start


@contextlib.asynccontextmanager
async def locked(root: Path = TWIN_ROOT) -> AsyncIterator[None]:
    """``/run/lintas-twin/.lock``: allocating a twin and judging twins dead are never concurrent."""
    os.makedirs(root, mode=0o755, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(f"{root / '.lock'} is held by another twin command") from None
                await asyncio.sleep(0.05)
        yield
    finally:
        os.close(fd)


def prefixes_on_disk(root: Path = TWIN_ROOT) -> set[str]:
    if not root.is_dir():
        return set()
    return {d.name for d in root.iterdir() if d.is_dir() and is_twin_prefix(d.name)}


async def prefixes_anywhere(tools: Tools, root: Path = TWIN_ROOT) -> set[str]:
    """Every twin prefix with a directory, a namespace or a process on this machine."""
    found = prefixes_on_disk(root)
    for n in await netns.list_namespaces(tools):
        inst = twin_of_namespace(n)
        if inst is not None:
            found.add(inst.prefix)
    for mount_root in netns.orphan_mounts(f"{root.name}/").values():
        parts = mount_root.split(f"{root.name}/", 1)[1].split("/")
        if parts and is_twin_prefix(parts[0]):
            found.add(parts[0])
    return found


def twin_statuses(root: Path = TWIN_ROOT) -> list[TwinStatus]:
    """Every twin with a directory under ``root`` (no root needed)."""
    out = []
    for prefix in sorted(prefixes_on_disk(root)):
        rec = load_record(prefix, root)
        out.append(TwinStatus(rec, prefix, is_alive(rec)))
    return out


def find_twin(name: str, root: Path = TWIN_ROOT) -> TwinRecord:
    for st in twin_statuses(root):
        if st.record is not None and st.record.name == name:
            return st.record
    raise LabError(f"no twin named {name!r} on this machine (see `lintas twin list`)")


# -- removal ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TwinDownReport:
    prefix: str
    name: str | None
    namespaces: int
    processes: int


async def teardown(tools: Tools, instance: Instance, root: Path = TWIN_ROOT) -> TwinDownReport:
    """Remove everything of twin ``instance``, found by its prefix alone (record or not)."""
    record = load_record(instance.prefix, root)
    if record is not None:
        with contextlib.suppress(OSError):
            unregister_twin(twin_paths(Path(record.home), instance, root), record.name)
    paths = twin_paths(Path(record.home) if record else Path("/nonexistent"), instance, root)
    namespaces = sorted(n for n in await netns.list_namespaces(tools) if instance.owns_namespace(n))
    inodes = set(netns.namespace_inodes(namespaces))
    killed = await netns.kill_namespace_processes(namespaces, inodes=inodes)
    counts = await netns.remove(tools, namespaces, root_links=False)
    killed += await netns.kill_namespace_processes(namespaces, inodes=inodes)
    killed += await netns.kill_pids(netns.orphan_pids(marker=paths.mount_marker))
    shutil.rmtree(paths.run_root, ignore_errors=True)
    return TwinDownReport(instance.prefix, record.name if record else None, counts["namespaces"], killed)


async def sweep_twins(tools: Tools, *, everything: bool = False, root: Path = TWIN_ROOT) -> list[TwinDownReport]:
    """Remove every dead twin (``everything``: every twin) and what is left of twins without a record."""
    if not await prefixes_anywhere(tools, root):
        return []  # no twin at all: nothing to lock (and no lock file made where no twin ever was)
    async with locked(root):
        out = []
        for prefix in sorted(await prefixes_anywhere(tools, root)):
            inst = twin_instance(prefix[len(TWIN_PREFIX) :])
            if everything or not is_alive(load_record(prefix, root)):
                out.append(await teardown(tools, inst, root))
        return out
