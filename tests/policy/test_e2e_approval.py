"""git push -> validate -> render -> policy + secscan -> (approval) -> deploy, all real.

A push that touches both spines waits for approval; approving it lets deploy run;
rejecting the next one cancels it. Deploy is the test plugin's ``t-noop`` until the real
deploy stage exists: what is under test is the gate in front of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lintas.engine import registry
from lintas.engine.app import stack
from lintas.engine.client import control, publish_control
from lintas.engine.settings import Settings
from lintas.engine.state import RunState
from tests.integration.helpers import commit, make_repo, pipeline, push, run_id_of, wait_run

PIPE = pipeline(
    "  validate: {}\n"
    "  render:\n    needs: [validate]\n"
    "  policy:\n    needs: [render]\n"
    "  secscan:\n    needs: [validate]\n"
    "  deploy:\n    uses: t-noop\n    needs: [policy, secscan]\n    approval: on_request\n"
)


@pytest.fixture
def stages_registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Register `policy` and `secscan` through a real entry point, as pyproject.toml will.

    Until pyproject declares them, a throw-away dist-info on sys.path (for this test
    only) does; once it does, this fixture changes nothing.
    """
    if {"policy", "secscan"} <= set(registry.stage_kinds()):
        return
    info = tmp_path / "eps" / "lintas_issue4_stages-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lintas-issue4-stages\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[lintas.stages]\npolicy = workers.policy.stage:PolicyStage\nsecscan = workers.secscan.stage:SecscanStage\n"
    )
    monkeypatch.syspath_prepend(str(info.parent))
    assert {"policy", "secscan"} <= set(registry.stage_kinds())


async def test_both_spines_wait_for_approval_then_deploy_or_cancel(
    tmp_path: Path,
    settings: Settings,
    stages_registered: None,
) -> None:
    repo = make_repo(tmp_path, settings)
    async with stack(settings) as st:
        first = commit(repo, settings, PIPE, "pipeline with policy and secscan gates")
        push(repo, settings)
        run = await wait_run(st.topo, run_id_of(repo, first), timeout=90, states={"waiting_approval", "failed"})
        assert run.state is RunState.waiting_approval, (run.error, {k: v.error for k, v in run.stages.items()})
        assert any("spine-01, spine-02" in r for r in run.approval_reasons), run.approval_reasons
        assert run.stages["secscan"].status.value == "succeeded"
        assert run.stages["deploy"].status.value == "pending"
        await publish_control(st.topo.js, control(run.run_id, "approve", "alice", "CAB-1234"))
        run = await wait_run(st.topo, run.run_id, timeout=60)
        assert run.state is RunState.succeeded, run.error
        assert run.stages["deploy"].status.value == "succeeded" and run.approved_by == "alice"

        fabric = (repo / "fabric" / "fabric.yaml").read_text().replace("maximum_paths: 4", "maximum_paths: 8")
        second = commit(repo, settings, {"fabric/fabric.yaml": fabric}, "wider ECMP on every switch")
        push(repo, settings)
        run = await wait_run(st.topo, run_id_of(repo, second), timeout=90, states={"waiting_approval", "failed"})
        assert run.state is RunState.waiting_approval, run.error
        await publish_control(st.topo.js, control(run.run_id, "reject", "bob", "not in the change window"))
        run = await wait_run(st.topo, run.run_id, timeout=60)
        assert run.state is RunState.canceled and "rejected by bob" in (run.error or "")
        assert run.stages["deploy"].status.value != "succeeded"


async def test_planted_secret_fails_the_run(tmp_path: Path, settings: Settings, stages_registered: None) -> None:
    key = "AKIA" + "Q7WXKP2M4RZT6YB3"
    repo = make_repo(tmp_path, settings)
    async with stack(settings) as st:
        sha = commit(repo, settings, {**PIPE, "scripts/backup.py": f'KEY_ID = "{key}"\n'}, "backup script")
        push(repo, settings)
        run = await wait_run(st.topo, run_id_of(repo, sha), timeout=90)
        assert run.state is RunState.failed
        stage = run.stages["secscan"]
        assert stage.status.value == "failed"
        assert any(d.file == "scripts/backup.py" and d.line == 1 for d in stage.diagnostics)
        assert key not in run.model_dump_json()
