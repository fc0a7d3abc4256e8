"""A target marked drifted by remediation is re-applied even though its artifacts did not change."""

from __future__ import annotations

import asyncio

from lintas.workers.render.plan import RenderIndex, make_plan


async def _nothing(_cid: str) -> bytes | None:
    return None


def test_drifted_target_is_changed_with_the_drift_as_its_diff() -> None:
    index = RenderIndex(
        repo="infra", sha="b" * 40, targets={"leaf-01": {"frr.conf": "sha256:1"}, "leaf-02": {"frr.conf": "sha256:2"}}
    )
    baseline = {"leaf-01": {"frr.conf": "sha256:1"}, "leaf-02": {"frr.conf": "sha256:2"}}
    plan = asyncio.run(
        make_plan(
            index,
            baseline,
            against="deployed",
            fetch=_nothing,
            drifted={"leaf-02": ["- ip prefix-list HAND-MADE seq 5 permit 198.51.100.0/24"]},
        )
    )
    assert plan.targets["leaf-01"].status == "unchanged"
    p2 = plan.targets["leaf-02"]
    assert p2.status == "changed" and p2.artifacts == {"frr.conf": "sha256:2"}
    assert p2.diffs[0].name == "(drift on the target)" and "HAND-MADE" in p2.diffs[0].diff
    assert plan.summary()["changed"] == ["leaf-02"]


def test_a_drift_mark_on_a_changed_target_keeps_the_real_diff() -> None:
    index = RenderIndex(repo="infra", sha="b" * 40, targets={"leaf-01": {"frr.conf": "sha256:new"}})
    plan = asyncio.run(
        make_plan(
            index,
            {"leaf-01": {"frr.conf": "sha256:old"}},
            against="deployed",
            fetch=_nothing,
            texts={"leaf-01": {"frr.conf": "hostname leaf-01\n"}},
            drifted={"leaf-01": ["x"]},
        )
    )
    assert plan.targets["leaf-01"].status == "changed"
    assert [d.name for d in plan.targets["leaf-01"].diffs] == ["frr.conf"]
