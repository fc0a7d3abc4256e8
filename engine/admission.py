"""Branch admission, pure: one active run per (repo, ref); a newer push supersedes
runs still queued on that branch. Persisted with compare-and-set like runs.

"Newer" is the push's stream sequence, not the order in which the engine happened to
process events, so concurrent processing can never let an older commit win.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from lintas.engine.commands import StartRun, SupersedeRun
from lintas.engine.state import BranchQueue, QueuedRun


@dataclass
class Admission:
    queue: BranchQueue
    commands: list[StartRun | SupersedeRun] = field(default_factory=list)


def enqueue(queue: BranchQueue, run_id: str, sha: str, seq: int = 0, *, active_finished: bool = False) -> Admission:
    """A new run for this branch. ``active_finished``: the recorded active run is already
    terminal (the engine died before releasing it), so the slot is free."""
    out = Admission(_clone(queue))
    if queue.active is not None and active_finished:
        out = release(queue, queue.active)  # free the stale slot first; may start the queued run
    q = out.queue
    if q.active == run_id:
        if StartRun(run_id=run_id) not in out.commands:
            out.commands.append(StartRun(run_id=run_id))  # the engine may have died before admitting it
        return out
    if any(e.run_id == run_id for e in q.queued):
        return out  # already queued: enqueue is idempotent
    if seq and seq < q.latest_seq and q.latest_run is not None:
        out.commands.append(SupersedeRun(run_id=run_id, by=q.latest_run))  # older than a push already admitted
        return out
    if seq >= q.latest_seq:
        q.latest_seq, q.latest_run = seq, run_id
    if q.active is None:
        q.active, q.active_seq = run_id, seq
        out.commands.append(StartRun(run_id=run_id))
        return out
    candidates = [*q.queued, QueuedRun(run_id=run_id, sha=sha, seq=seq)]
    newest = max(reversed(candidates), key=lambda e: e.seq)  # ties: the latest arrival wins
    out.commands += [SupersedeRun(run_id=e.run_id, by=newest.run_id) for e in candidates if e is not newest]
    q.queued = [newest]
    return out


def release(queue: BranchQueue, run_id: str) -> Admission:
    """A run ended (or was canceled while queued): free its slot, start the next."""
    q = _clone(queue)
    out = Admission(q)
    if q.active == run_id:
        q.active, q.active_seq = None, 0
        if q.queued:
            nxt = q.queued.pop(0)
            q.active, q.active_seq = nxt.run_id, nxt.seq
            out.commands.append(StartRun(run_id=nxt.run_id))
    else:
        q.queued = [e for e in q.queued if e.run_id != run_id]
    return out


def _clone(queue: BranchQueue) -> BranchQueue:
    return queue.model_copy(update={"queued": list(queue.queued)})  # QueuedRun is frozen


def superseded_in_batch(pushes: list[tuple[int, str, str, str, str | None]]) -> dict[int, int]:
    """Pushes ``(stream seq, repo, ref, sha, before)`` taken from the stream together: which are
    superseded at once, each mapped to the seq of its branch's newest push in the batch.

    Only where the batch shows the order for certain: a branch's pushes, by stream sequence,
    form one chain (each push's ``before`` is the previous one's commit). Pushes that reached
    the stream out of order (two hooks at once, a webhook redelivered, a spool flushed late)
    are left to :func:`enqueue` and the freshness rule, which see the branch head."""
    branches: dict[tuple[str, str], list[tuple[int, str, str | None]]] = {}
    for seq, repo, ref, sha, before in pushes:
        branches.setdefault((repo, ref), []).append((seq, sha, before))
    out: dict[int, int] = {}
    for chain in branches.values():
        chain.sort()
        if len(chain) < 2 or any(b[2] != a[1] for a, b in itertools.pairwise(chain)):
            continue
        newest = chain[-1][0]
        out.update({seq: newest for seq, _, _ in chain[:-1]})
    return out
