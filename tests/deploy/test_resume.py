"""What deploy, verify and rollback do with a pending commit found on a device (issue 19), unit level.

``FakeDriver`` is a fake of the napalm driver's commit-confirm surface only (pending
commit, checkpoint, confirm, rollback), to test the decisions; the real driver and the
real lab are exercised by ``tests/deploy/test_crash_drills.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from lintas.workers.deploy import faults, ops

RUN = "r-0123456789abcdef"
OTHER = "r-fedcba9876543210"


class FakeDriver:
    """Fake: the commit-confirm state of one device, nothing else."""

    def __init__(
        self, *, pending_by: str | None = None, message: str | None = None, checkpoint: str = "c1", differs: bool = True
    ) -> None:
        self.checkpoint = checkpoint
        self.pending: dict[str, Any] | None = None
        if pending_by is not None or message is not None:
            msg = message if message is not None else ops.commit_message(pending_by or "", "a" * 40, "demo", "main")
            self.pending = {"status": "pending", "checkpoint": checkpoint, "message": msg, "seconds_left": 33}
        self.differs = differs
        self.calls: list[str] = []

    def get_pending_commit(self) -> dict[str, Any] | None:
        return self.pending

    def load_replace_candidate(self, config: dict[str, str]) -> None:
        self.calls.append("load")

    def compare_config(self) -> str:
        return "+ vni 10099\n" if self.differs else ""

    def discard_config(self) -> None:
        self.calls.append("discard")

    def commit_config(self, message: str, revert_in: int) -> None:
        self.calls.append("commit")
        self.checkpoint = "c2"
        self.pending = {"status": "pending", "checkpoint": "c2", "message": message, "seconds_left": revert_in}

    def confirm_commit(self) -> None:
        self.calls.append("confirm")
        self.pending = None

    def rollback(self) -> None:
        self.calls.append("rollback")
        self.pending = None

    def get_kernel_facts(self) -> dict[str, Any]:
        return {"applied": {"checkpoint": self.checkpoint}}


def apply(d: FakeDriver) -> ops.Applied:
    return ops.apply(
        d,
        "leaf-02",
        bundles={"leaf-02": {}},
        revert_in=60,
        message=ops.commit_message(RUN, "a" * 40, "demo", "main"),
        fence=lambda _n: None,
        run_id=RUN,
    )


def test_the_commit_message_names_the_run_and_is_read_back() -> None:
    d = FakeDriver(pending_by=RUN)
    p = ops.pending_commit(d, "leaf-02")
    assert p is not None and (p.run_id, p.checkpoint, p.seconds_left) == (RUN, "c1", 33)
    assert ops.pending_commit(FakeDriver(message="by hand"), "x").run_id is None  # type: ignore[union-attr]
    assert ops.pending_commit(FakeDriver(), "x") is None


def test_a_pending_commit_of_this_run_is_adopted_not_called_unchanged() -> None:
    d = FakeDriver(pending_by=RUN, differs=False)  # the pending commit put the device at the candidate
    a = apply(d)
    assert a.changed and a.resumed and a.checkpoint == "c1" and a.seconds_left == 33
    assert d.calls == []  # not compared, not committed again


@pytest.mark.parametrize("message", [ops.commit_message(OTHER, "b" * 40, "demo", "main"), "maintenance by hand"])
def test_a_pending_commit_of_another_run_or_unknown_origin_fails_the_device(message: str) -> None:
    d = FakeDriver(message=message)
    with pytest.raises(ops.ForeignCommitError, match="leaf-02: refused: the device holds an unconfirmed commit"):
        apply(d)
    assert d.calls == []


def test_no_pending_commit_compares_and_commits_as_before() -> None:
    d = FakeDriver(differs=True)
    a = apply(d)
    assert a.changed and not a.resumed and a.checkpoint == "c2" and d.calls == ["load", "commit"]
    same = FakeDriver(differs=False)
    assert not apply(same).changed and same.calls == ["load", "discard"]


def test_confirm_covers_this_runs_commit_or_one_confirmed_before_a_crash() -> None:
    d = FakeDriver(pending_by=RUN)
    assert ops.confirm(d, "leaf-02", run_id=RUN, checkpoints={"leaf-02": "c1"}) == "confirmed"
    assert d.calls == ["confirm"]
    # confirmed before the crash: no pending commit, the device still runs this run's checkpoint
    assert ops.confirm(FakeDriver(), "leaf-02", run_id=RUN, checkpoints={"leaf-02": "c1"}) == "already_confirmed"
    # the timer restored it: the checkpoint on the device is not this run's
    with pytest.raises(LookupError, match="timer restored"):
        ops.confirm(FakeDriver(checkpoint="c0"), "leaf-02", run_id=RUN, checkpoints={"leaf-02": "c1"})
    with pytest.raises(ops.ForeignCommitError):
        ops.confirm(FakeDriver(pending_by=OTHER), "leaf-02", run_id=RUN, checkpoints={"leaf-02": "c1"})


def test_confirm_of_a_commit_verify_just_read_as_ours_confirms_without_reading_it_again() -> None:
    class Counting(FakeDriver):
        reads = 0

        def get_pending_commit(self) -> dict[str, Any] | None:
            self.reads += 1
            return super().get_pending_commit()

    d = Counting(pending_by=RUN)
    ours = frozenset({"leaf-02"})
    assert ops.confirm(d, "leaf-02", run_id=RUN, checkpoints={"leaf-02": "c1"}, known_ours=ours) == "confirmed"
    assert d.calls == ["confirm"] and d.reads == 0
    other = Counting(pending_by=RUN)  # not in known_ours: read first, as before
    assert ops.confirm(other, "leaf-03", run_id=RUN, checkpoints={}, known_ours=ours) == "confirmed"
    assert other.reads == 1


def test_rollback_never_touches_another_runs_pending_commit() -> None:
    d = FakeDriver(pending_by=OTHER)
    assert ops.restore(d, "leaf-02", checkpoints={}, run_id=RUN) == "not_ours" and d.calls == []
    mine = FakeDriver(pending_by=RUN)
    assert ops.restore(mine, "leaf-02", checkpoints={}, run_id=RUN) == "rolled_back" and mine.calls == ["rollback"]


async def test_a_fault_point_is_inert_unless_armed(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.ENV, raising=False)
    monkeypatch.delenv(faults.ENV_FILE, raising=False)
    await faults.reach(tmp_path, "deploy.committed")  # returns at once
    faults.reach_blocking(tmp_path, "deploy.host_mid_apply")
    assert not (tmp_path / "faults").exists()
    assert not faults.armed("deploy.committed")
    monkeypatch.setenv(faults.ENV, "deploy.committed")
    assert faults.armed("deploy.committed") and not faults.armed("verify.before_confirm")
    assert "deploy.committed" in faults.POINTS


async def test_a_fault_file_arms_one_point_and_is_consumed(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.ENV, raising=False)
    arm = tmp_path / "arm"
    monkeypatch.setenv(faults.ENV_FILE, str(arm))
    assert not faults.armed("verify.before_confirm")  # no file: nothing armed
    arm.write_text("verify.before_confirm\n")
    assert faults.armed("verify.before_confirm") and not faults.armed("deploy.committed")
    assert faults._mark(tmp_path, "verify.before_confirm")
    assert (tmp_path / "faults" / "verify.before_confirm").exists() and not arm.exists()
    assert not faults.armed("verify.before_confirm")
