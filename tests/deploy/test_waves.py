"""Rollout order (workers.deploy.waves): spines one by one, a canary, batches of leaves, hosts last."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from lintas.engine.settings import Settings
from lintas.workers.deploy import ops
from lintas.workers.deploy.fleet import Outcome
from lintas.workers.deploy.record import DeployRecord, TargetResult
from lintas.workers.deploy.rollback import RollbackStage
from lintas.workers.deploy.waves import Strategy, Wave, plan_waves, restore_order

ROLES = {
    "spine-01": "spine",
    "spine-02": "spine",
    "leaf-01": "leaf",
    "leaf-02": "leaf",
    "leaf-03": "leaf",
    "leaf-04": "leaf",
    "leaf-05": "leaf",
    "kvm-uat-01": "host",
    "osc-01": "host",
}
LEAVES = ["leaf-01", "leaf-02", "leaf-03", "leaf-04", "leaf-05"]


def shape(waves: list[Wave]) -> list[tuple[int, str, list[str]]]:
    return [(w.index, w.kind, w.devices) for w in waves]


def test_spines_one_per_wave_then_canary_then_batches_then_hosts() -> None:
    waves = plan_waves(ROLES, ROLES, strategy="waves", canary=1, batch_size=2)
    assert shape(waves) == [
        (0, "spine", ["spine-01"]),
        (1, "spine", ["spine-02"]),
        (2, "canary", ["leaf-01"]),
        (3, "leaves", ["leaf-02", "leaf-03"]),
        (4, "leaves", ["leaf-04", "leaf-05"]),
        (5, "hosts", ["kvm-uat-01", "osc-01"]),
    ]


def test_every_target_exactly_once_and_indexes_consecutive() -> None:
    waves = plan_waves(ROLES, ROLES, strategy="waves", canary=2, batch_size=1)
    flat = [d for w in waves for d in w.devices]
    assert sorted(flat) == sorted(ROLES)
    assert len(flat) == len(set(flat))
    assert [w.index for w in waves] == list(range(len(waves)))
    assert all(w.devices for w in waves)


def test_batch_size_zero_puts_all_remaining_leaves_in_one_wave() -> None:
    waves = plan_waves(ROLES, ROLES, strategy="waves", canary=1, batch_size=0)
    assert shape(waves) == [
        (0, "spine", ["spine-01"]),
        (1, "spine", ["spine-02"]),
        (2, "canary", ["leaf-01"]),
        (3, "leaves", ["leaf-02", "leaf-03", "leaf-04", "leaf-05"]),
        (4, "hosts", ["kvm-uat-01", "osc-01"]),
    ]


def test_batch_size_not_dividing_leaves_leaves_a_short_last_batch() -> None:
    waves = plan_waves(LEAVES, ROLES, strategy="waves", canary=1, batch_size=3)
    assert shape(waves) == [
        (0, "canary", ["leaf-01"]),
        (1, "leaves", ["leaf-02", "leaf-03", "leaf-04"]),
        (2, "leaves", ["leaf-05"]),
    ]


def test_hosts_are_batched_with_batch_size_and_always_after_every_switch() -> None:
    roles = {**ROLES, "kvm-uat-02": "host"}
    waves = plan_waves(roles, roles, strategy="waves", canary=1, batch_size=2)
    kinds = [w.kind for w in waves]
    first_host = kinds.index("hosts")
    assert all(k == "hosts" for k in kinds[first_host:])
    assert [w.devices for w in waves if w.kind == "hosts"] == [["kvm-uat-01", "kvm-uat-02"], ["osc-01"]]


def test_host_never_in_the_same_wave_as_a_leaf_even_with_a_single_leaf() -> None:
    roles = {"leaf-01": "leaf", "kvm-uat-01": "host"}
    waves = plan_waves(roles, roles, strategy="waves", canary=0, batch_size=0)
    assert shape(waves) == [(0, "leaves", ["leaf-01"]), (1, "hosts", ["kvm-uat-01"])]


def test_canary_zero_means_no_canary_wave() -> None:
    waves = plan_waves(ROLES, ROLES, strategy="waves", canary=0, batch_size=0)
    assert "canary" not in [w.kind for w in waves]
    assert shape(waves)[2] == (2, "leaves", LEAVES)


def test_canary_of_several_leaves() -> None:
    waves = plan_waves(LEAVES, ROLES, strategy="waves", canary=2, batch_size=0)
    assert shape(waves) == [(0, "canary", ["leaf-01", "leaf-02"]), (1, "leaves", ["leaf-03", "leaf-04", "leaf-05"])]


@pytest.mark.parametrize("canary", [5, 6, 50])
def test_canary_covering_every_leaf_gives_one_leaf_wave_and_no_canary(canary: int) -> None:
    # a canary as large as the whole leaf set would be the rollout itself: no separate canary wave
    waves = plan_waves(LEAVES, ROLES, strategy="waves", canary=canary, batch_size=0)
    assert shape(waves) == [(0, "leaves", LEAVES)]


def test_canary_covering_every_leaf_still_batches() -> None:
    waves = plan_waves(LEAVES, ROLES, strategy="waves", canary=9, batch_size=2)
    assert shape(waves) == [
        (0, "leaves", ["leaf-01", "leaf-02"]),
        (1, "leaves", ["leaf-03", "leaf-04"]),
        (2, "leaves", ["leaf-05"]),
    ]


def test_only_spines() -> None:
    waves = plan_waves(["spine-02", "spine-01"], ROLES, strategy="waves", canary=1, batch_size=0)
    assert shape(waves) == [(0, "spine", ["spine-01"]), (1, "spine", ["spine-02"])]


def test_only_hosts() -> None:
    waves = plan_waves(["osc-01", "kvm-uat-01"], ROLES, strategy="waves", canary=1, batch_size=0)
    assert shape(waves) == [(0, "hosts", ["kvm-uat-01", "osc-01"])]


def test_unknown_roles_go_with_the_leaves() -> None:
    waves = plan_waves(["leaf-01", "mystery", "leaf-02"], ROLES, strategy="waves", canary=1, batch_size=0)
    assert shape(waves) == [(0, "canary", ["leaf-01"]), (1, "leaves", ["leaf-02", "mystery"])]


def test_targets_are_sorted_and_deduplicated() -> None:
    waves = plan_waves(
        ["leaf-03", "leaf-01", "leaf-03", "spine-02", "leaf-02"], ROLES, strategy="waves", canary=1, batch_size=0
    )
    assert shape(waves) == [
        (0, "spine", ["spine-02"]),
        (1, "canary", ["leaf-01"]),
        (2, "leaves", ["leaf-02", "leaf-03"]),
    ]


def test_all_at_once_is_one_wave_of_every_switch_then_the_hosts() -> None:
    waves = plan_waves(ROLES, ROLES, strategy="all_at_once", canary=1, batch_size=1)
    switches = sorted(n for n, r in ROLES.items() if r != "host")
    assert shape(waves) == [(0, "all", switches), (1, "hosts", ["kvm-uat-01", "osc-01"])]


def test_all_at_once_with_only_hosts() -> None:
    waves = plan_waves(["osc-01"], ROLES, strategy="all_at_once", canary=1, batch_size=1)
    assert shape(waves) == [(0, "hosts", ["osc-01"])]


@pytest.mark.parametrize("strategy", ["waves", "all_at_once"])
def test_empty_targets_plan_nothing(strategy: str) -> None:
    assert plan_waves([], ROLES, strategy=strategy, canary=1, batch_size=0) == []


def test_wave_is_frozen_and_strict() -> None:
    w = Wave(index=0, kind="spine", devices=["spine-01"])
    with pytest.raises(ValidationError):
        w.index = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Wave(index=0, kind="rack", devices=[])  # type: ignore[arg-type]


# -- Strategy: the deploy stage's `with:` options ------------------------------------------------


def test_strategy_defaults() -> None:
    s = Strategy()
    assert (s.strategy, s.canary, s.batch_size, s.parallelism, s.revert_in, s.health_timeout) == (
        "waves",
        None,
        None,
        None,
        None,
        None,
    )


def test_strategy_accepts_valid_options() -> None:
    s = Strategy.model_validate(
        {
            "strategy": "all_at_once",
            "canary": 0,
            "batch_size": 4,
            "parallelism": 2,
            "revert_in": 10,
            "health_timeout": 0.5,
        }
    )
    assert (s.strategy, s.canary, s.batch_size, s.parallelism, s.revert_in, s.health_timeout) == (
        "all_at_once",
        0,
        4,
        2,
        10,
        0.5,
    )


@pytest.mark.parametrize("options", [{"canaries": 2}, {"batchsize": 2}, {"strategy": "waves", "revert": 60}])
def test_strategy_rejects_unknown_keys(options: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as exc:
        Strategy.model_validate(options)
    assert any(e["type"] == "extra_forbidden" for e in exc.value.errors())


@pytest.mark.parametrize("revert_in", [0, 9, -30])
def test_strategy_rejects_revert_in_below_10(revert_in: int) -> None:
    with pytest.raises(ValidationError) as exc:
        Strategy.model_validate({"revert_in": revert_in})
    assert exc.value.errors()[0]["loc"] == ("revert_in",)


@pytest.mark.parametrize(
    "options",
    [
        {"strategy": "rolling"},
        {"canary": -1},
        {"batch_size": -1},
        {"parallelism": 0},
        {"health_timeout": 0},
    ],
)
def test_strategy_rejects_out_of_range_values(options: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Strategy.model_validate(options)


# -- rollback: the waves in reverse ----------------------------------------------------------------


def test_restore_order_is_the_waves_in_reverse_each_wave_at_once() -> None:
    waves = [w.devices for w in plan_waves(ROLES, ROLES, strategy="waves", canary=1, batch_size=2)]
    touched = ["spine-01", "spine-02", "leaf-01", "leaf-02", "leaf-05"]
    assert restore_order(waves, touched) == [
        ["leaf-05"],
        ["leaf-02"],
        ["leaf-01"],
        ["spine-02"],
        ["spine-01"],
    ]
    # only leaves touched, in one wave: one group, all at once
    assert restore_order([["spine-01"], ["leaf-01"], ["leaf-02", "leaf-04"]], ["leaf-04", "leaf-02"]) == [
        ["leaf-02", "leaf-04"]
    ]
    # a target no wave names (an old record) comes last; nothing touched: nothing to do
    assert restore_order([["spine-01"]], ["spine-01", "leaf-09"]) == [["spine-01"], ["leaf-09"]]
    assert restore_order([["spine-01"]], []) == []


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def info(self, text: str) -> None:
        self.lines.append(text)


class _Fleet:
    """Records the groups rollback restores, in order."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def run(self, names: Any, fn: Any, **kw: Any) -> dict[str, Outcome[str]]:
        assert fn is ops.restore and kw["run_id"] == "r-1" and set(kw["checkpoints"]) >= set(names)
        self.calls.append(list(names))
        await asyncio.sleep(0)
        return {n: Outcome("rolled_back", None) for n in names}


def test_rollback_restores_the_switches_wave_by_wave_in_reverse() -> None:
    record = DeployRecord(
        run_id="r-1",
        repo="demo",
        sha="0" * 40,
        revert_in_s=60,
        waves=[["spine-01"], ["spine-02"], ["leaf-01"], ["leaf-02", "leaf-03"], ["kvm-uat-01"]],
        targets={
            n: TargetResult(target=n, status="committed", checkpoint=f"c-{n}")
            for n in ["spine-01", "spine-02", "leaf-01", "leaf-02", "leaf-03"]
        },
    )
    fleet, log = _Fleet(), _Log()
    ctx = type("Ctx", (), {"log": log})()
    got = asyncio.run(
        RollbackStage(Settings())._restore_switches(ctx, fleet, record, sorted(record.targets))  # type: ignore[arg-type]
    )
    assert fleet.calls == [["leaf-02", "leaf-03"], ["leaf-01"], ["spine-02"], ["spine-01"]]
    assert set(got) == set(record.targets) and all(r.value == "rolled_back" for r in got.values())
    assert "restoring leaf-02, leaf-03 (1/4, the rollout's waves in reverse)" in log.lines
