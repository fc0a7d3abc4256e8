"""Branch admission, pure: one active run per (repo, ref); a newer push supersedes
runs still queued on that branch. Persisted with compare-and-set like runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.commands import StartRun, SupersedeRun
from engine.state import BranchQueue, QueuedRun


@dataclass
class Admission:
    queue: BranchQueue
    commands: list[StartRun | SupersedeRun] = field(default_factory=list)


def enqueue(queue: BranchQueue, run_id: str, sha: str, *, active_finished: bool = False) -> Admission:
    """A new run for this branch. ``active_finished``: the recorded active run is already
    terminal (the engine died before releasing it), so the slot is free."""
    out = Admission(queue.model_copy(deep=True))
    if queue.active is not None and active_finished:
        out = release(queue, queue.active)  # free the stale slot first; may start the queued run
    q = out.queue
    if q.active == run_id or any(e.run_id == run_id for e in q.queued):
        return out  # already known: enqueue is idempotent
    if q.active is None:
        q.active = run_id
        out.commands.append(StartRun(run_id=run_id))
        return out
    out.commands += [SupersedeRun(run_id=e.run_id, by=run_id) for e in q.queued]
    q.queued = [QueuedRun(run_id=run_id, sha=sha)]
    return out


def release(queue: BranchQueue, run_id: str) -> Admission:
    """A run ended (or was canceled while queued): free its slot, start the next."""
    q = queue.model_copy(deep=True)
    out = Admission(q)
    if q.active == run_id:
        q.active = None
        if q.queued:
            nxt = q.queued.pop(0)
            q.active = nxt.run_id
            out.commands.append(StartRun(run_id=nxt.run_id))
    else:
        q.queued = [e for e in q.queued if e.run_id != run_id]
    return out
