"""Unit tests for pure branch admission (:mod:`engine.admission`): one active run per
(repo, ref), at most one queued (the newest push, by stream sequence)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lintas.engine.admission import Admission, enqueue, release, superseded_in_batch
from lintas.engine.commands import StartRun, SupersedeRun
from lintas.engine.state import BranchQueue, QueuedRun

REPO, REF = "infra", "refs/heads/main"


def sha(n: int) -> str:
    return f"{n:040x}"


def empty() -> BranchQueue:
    return BranchQueue(repo=REPO, ref=REF)


def enq(q: BranchQueue, run_id: str, seq: int = 0, *, active_finished: bool = False) -> Admission:
    """enqueue(), checking the input queue is left untouched."""
    before = q.model_dump()
    out = enqueue(q, run_id, sha(seq), seq, active_finished=active_finished)
    assert q.model_dump() == before, "enqueue mutated its input"
    assert out.queue is not q
    return out


def rel(q: BranchQueue, run_id: str) -> Admission:
    before = q.model_dump()
    out = release(q, run_id)
    assert q.model_dump() == before, "release mutated its input"
    assert out.queue is not q
    return out


def chain(*ops: tuple[Any, ...]) -> BranchQueue:
    q = empty()
    for op in ops:
        q = (enq(q, *op[1:]) if op[0] == "enq" else rel(q, op[1])).queue
    return q


def state(q: BranchQueue) -> tuple[str | None, list[str]]:
    return q.active, [e.run_id for e in q.queued]


# --------------------------------------------------------------------------- enqueue
def test_first_enqueue_starts_the_run() -> None:
    out = enq(empty(), "r1", 1)
    assert out.commands == [StartRun(run_id="r1")]
    assert out.queue.active == "r1"
    assert out.queue.active_seq == 1
    assert out.queue.queued == []
    assert (out.queue.repo, out.queue.ref) == (REPO, REF)


def test_second_enqueue_waits_in_the_queue() -> None:
    q = chain(("enq", "r1", 1))
    out = enq(q, "r2", 2)
    assert out.commands == []
    assert out.queue.active == "r1" and out.queue.active_seq == 1
    assert out.queue.queued == [QueuedRun(run_id="r2", sha=sha(2), seq=2)]


def test_third_enqueue_supersedes_the_queued_one_and_queues_itself() -> None:
    q = chain(("enq", "r1", 1), ("enq", "r2", 2))
    out = enq(q, "r3", 3)
    assert out.commands == [SupersedeRun(run_id="r2", by="r3")]
    assert state(out.queue) == ("r1", ["r3"])
    assert out.queue.queued[0] == QueuedRun(run_id="r3", sha=sha(3), seq=3)


def test_many_pushes_keep_only_the_newest_queued() -> None:
    q = chain(("enq", "r1", 1))
    superseded = []
    for n in range(2, 8):
        out = enq(q, f"r{n}", n)
        superseded += out.commands
        q = out.queue
    assert superseded == [SupersedeRun(run_id=f"r{n}", by=f"r{n + 1}") for n in range(2, 7)]
    assert state(q) == ("r1", ["r7"])


def test_late_older_push_is_superseded_by_the_queued_newer_one() -> None:
    # processed out of order: push seq 3 queued first, then the older seq 2 arrives
    q = chain(("enq", "r1", 1), ("enq", "r3", 3))
    out = enq(q, "r2", 2)
    assert out.commands == [SupersedeRun(run_id="r2", by="r3")]
    assert out.queue == q


def test_late_push_older_than_the_active_run_is_superseded_by_it() -> None:
    q = chain(("enq", "r5", 5))
    out = enq(q, "r3", 3)
    assert out.commands == [SupersedeRun(run_id="r3", by="r5")]
    assert out.queue == q


def test_equal_sequences_let_the_latest_arrival_win() -> None:
    # seq 0: order unknown (e.g. pushes fed in directly); the newest arrival wins as before
    q = chain(("enq", "r1", 0), ("enq", "r2", 0))
    out = enq(q, "r3", 0)
    assert out.commands == [SupersedeRun(run_id="r2", by="r3")]
    assert state(out.queue) == ("r1", ["r3"])


def test_unsequenced_run_is_never_rejected_as_older_than_the_active_one() -> None:
    # a retry (seq 0) of an old run is an explicit operator request: it queues
    q = chain(("enq", "r5", 5))
    out = enq(q, "retry", 0)
    assert out.commands == []
    assert state(out.queue) == ("r5", ["retry"])


def test_enqueue_of_a_queued_run_is_idempotent() -> None:
    q = chain(("enq", "r1", 1), ("enq", "r2", 2))
    out = enq(q, "r2", 2)
    assert out.commands == []
    assert out.queue == q


def test_enqueue_of_the_active_run_keeps_the_queue() -> None:
    q = chain(("enq", "r1", 1), ("enq", "r2", 2))
    out = enq(q, "r1", 1)
    assert out.queue == q
    assert not any(isinstance(c, SupersedeRun) for c in out.commands)


def test_enqueue_of_the_active_run_reissues_start() -> None:
    # Recovery: the engine died after the branch recorded r1 as active but before r1 was
    # admitted. On restart r1 is still `queued`, Recover re-sends Enqueue, and unless
    # StartRun is re-issued (Admitted is idempotent) r1 never starts and the branch is
    # blocked for good.
    q = chain(("enq", "r1", 1))
    out = enq(q, "r1", 1)
    assert out.queue == q
    assert out.commands == [StartRun(run_id="r1")]


# --------------------------------------------------------------------------- release
def test_release_of_the_active_run_starts_the_queued_one() -> None:
    q = chain(("enq", "r1", 1), ("enq", "r2", 2))
    out = rel(q, "r1")
    assert out.commands == [StartRun(run_id="r2")]
    assert state(out.queue) == ("r2", [])
    assert out.queue.active_seq == 2


def test_release_of_the_only_run_frees_the_slot() -> None:
    out = rel(chain(("enq", "r1", 1)), "r1")
    assert out.commands == []
    assert state(out.queue) == (None, [])
    assert out.queue.active_seq == 0


def test_release_of_a_queued_run_removes_it() -> None:
    q = chain(("enq", "r1", 1), ("enq", "r2", 2))
    out = rel(q, "r2")
    assert out.commands == []
    assert state(out.queue) == ("r1", [])
    assert out.queue.active_seq == 1


@pytest.mark.parametrize("queue_ops", [(), (("enq", "r1", 1),), (("enq", "r1", 1), ("enq", "r2", 2))])
def test_release_of_an_unknown_run_changes_nothing(queue_ops: tuple[tuple[Any, ...], ...]) -> None:
    q = chain(*queue_ops)
    out = rel(q, "r-unknown")
    assert out.commands == []
    assert out.queue == q


def test_release_is_idempotent() -> None:
    q = chain(("enq", "r1", 1), ("enq", "r2", 2))
    once = rel(q, "r1")
    twice = rel(once.queue, "r1")
    assert twice.commands == []
    assert twice.queue == once.queue


def test_after_release_the_next_push_starts_at_once() -> None:
    q = chain(("enq", "r1", 1), ("rel", "r1"))
    out = enq(q, "r2", 2)
    assert out.commands == [StartRun(run_id="r2")]
    assert state(out.queue) == ("r2", [])


def test_late_older_push_after_the_newer_run_finished_does_not_start() -> None:
    # The engine handled push seq 9 first (e.g. seq 3 failed once and was redelivered);
    # r9 ran to the end and released the branch. Starting r3 now would deploy the older
    # commit over the newer one: exactly the "older commit wins" the sequence prevents.
    q = chain(("enq", "r9", 9), ("rel", "r9"))
    out = enq(q, "r3", 3)
    assert not any(isinstance(c, StartRun) for c in out.commands), out.commands
    assert [c.run_id for c in out.commands if isinstance(c, SupersedeRun)] == ["r3"]
    assert out.queue.active is None and out.queue.queued == []


# --------------------------------------------------------------------------- stale slot
def test_active_finished_frees_the_stale_slot() -> None:
    q = chain(("enq", "r1", 1))  # r1 ended but the engine died before releasing it
    out = enq(q, "r2", 2, active_finished=True)
    assert out.commands == [StartRun(run_id="r2")]
    assert state(out.queue) == ("r2", [])
    assert out.queue.active_seq == 2


def test_active_finished_starts_the_waiting_run_and_queues_the_new_one() -> None:
    q = chain(("enq", "r1", 1), ("enq", "r2", 2))
    out = enq(q, "r3", 3, active_finished=True)
    assert out.commands == [StartRun(run_id="r2")]
    assert state(out.queue) == ("r2", ["r3"])


def test_active_finished_with_an_older_new_run() -> None:
    q = chain(("enq", "r1", 1), ("enq", "r5", 5))
    out = enq(q, "r3", 3, active_finished=True)
    assert out.commands == [StartRun(run_id="r5"), SupersedeRun(run_id="r3", by="r5")]
    assert state(out.queue) == ("r5", [])


def test_active_finished_when_recovering_the_waiting_run_starts_it() -> None:
    # Recover re-enqueues the waiting run r2; the stale r1 is freed and r2 starts
    q = chain(("enq", "r1", 1), ("enq", "r2", 2))
    out = enq(q, "r2", 2, active_finished=True)
    assert out.commands == [StartRun(run_id="r2")]
    assert state(out.queue) == ("r2", [])


def test_active_finished_without_an_active_run_is_a_plain_enqueue() -> None:
    out = enq(empty(), "r1", 1, active_finished=True)
    assert out.commands == [StartRun(run_id="r1")]
    assert state(out.queue) == ("r1", [])


def test_active_finished_false_keeps_the_slot_busy() -> None:
    q = chain(("enq", "r1", 1))
    out = enq(q, "r2", 2, active_finished=False)
    assert out.commands == []
    assert state(out.queue) == ("r1", ["r2"])


# --------------------------------------------------------------------------- purity
def test_inputs_are_not_mutated_and_results_are_independent() -> None:
    q = chain(("enq", "r1", 1), ("enq", "r2", 2))
    snapshot = q.model_dump()
    a = enqueue(q, "r3", sha(3), 3)
    b = enqueue(q, "r3", sha(3), 3)
    assert a.queue == b.queue and a.commands == b.commands
    a.queue.queued.append(QueuedRun(run_id="x", sha=sha(0)))
    a.queue.active = "x"
    r = release(q, "r1")
    r.queue.queued.clear()
    assert q.model_dump() == snapshot
    assert b.queue.queued == [QueuedRun(run_id="r3", sha=sha(3), seq=3)]


# --------------------------------------------------------------------------- randomized
@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["enq", "enq", "rel", "stale"]), st.integers(1, 8)), max_size=40))
def test_random_admission_sequences_keep_the_invariants(ops: list[tuple[str, int]]) -> None:
    """Run ``rN`` is the push with stream sequence N. Invariants: one active, at most one
    queued; every run is accounted for (active, queued, released or superseded); a
    superseded run is never started afterwards; the queued run is never older than the
    active one."""
    q = empty()
    superseded: set[str] = set()
    released: set[str] = set()
    for op, n in ops:
        rid = f"r{n}"
        if op != "rel" and rid in released:
            continue  # a finished run is never enqueued again (Recover releases it instead)
        before = {q.active, *(e.run_id for e in q.queued)} - {None}
        if op == "rel":
            target = rid if rid in before else (q.active or rid)
            out = rel(q, target)
            released.add(target)
        else:
            out = enq(q, rid, n, active_finished=op == "stale")
            if op == "stale" and q.active is not None:
                released.add(q.active)
        after = {out.queue.active, *(e.run_id for e in out.queue.queued)} - {None}
        starts = [c.run_id for c in out.commands if isinstance(c, StartRun)]
        sups = [c for c in out.commands if isinstance(c, SupersedeRun)]

        assert len(out.queue.queued) <= 1
        assert out.queue.active not in {e.run_id for e in out.queue.queued}
        assert len(starts) <= 1
        for s_ in starts:
            assert s_ == out.queue.active
            assert s_ not in superseded, f"{s_} started after it was superseded"
        for c in sups:
            assert c.run_id not in after, f"{c.run_id} superseded but still on the branch"
            assert c.by in after | released, "superseded by a run that never held the branch"
            superseded.add(c.run_id)
        if out.queue.queued and out.queue.active is not None:
            assert out.queue.queued[0].seq >= out.queue.active_seq
        # conservation: nobody vanishes without a release or a supersede
        lost = (before | ({rid} if op != "rel" else set())) - after - released - {c.run_id for c in sups}
        assert not lost, f"{lost} vanished from the branch"
        q = out.queue


# -- pushes taken from the stream together (engine.runner's batch scan) ----------------------


def pushed(*seqs: int, repo: str = REPO, ref: str = REF) -> list[tuple[int, str, str, str, str | None]]:
    """Pushes at these stream sequences, each on top of the previous one (before = its sha)."""
    return [(q, repo, ref, sha(q), sha(seqs[i - 1]) if i else None) for i, q in enumerate(seqs)]


def test_a_chain_in_one_batch_leaves_only_its_newest() -> None:
    assert superseded_in_batch(pushed(3, 5, 9)) == {3: 9, 5: 9}


def test_one_push_per_branch_is_superseded_by_nothing() -> None:
    assert superseded_in_batch(pushed(3) + pushed(4, repo="other") + pushed(5, ref="refs/heads/b")) == {}


def test_branches_are_judged_apart() -> None:
    assert superseded_in_batch(pushed(1, 4) + pushed(2, 3, repo="other")) == {1: 4, 2: 3}


def test_the_head_before_its_parent_in_the_stream_is_left_to_admission() -> None:
    """The stream's order is not git's (two hooks at once, a late spool): nothing at birth, or
    the head would be superseded by its own parent, which the freshness rule then refuses."""
    head_first = [(1, REPO, REF, sha(20), sha(10)), (2, REPO, REF, sha(10), None)]
    assert superseded_in_batch(head_first) == {}


def test_a_force_push_in_the_batch_breaks_the_pushed() -> None:
    pushes = pushed(1, 2) + [(3, REPO, REF, sha(99), sha(42))]  # before is not push 2's commit
    assert superseded_in_batch(pushes) == {}
