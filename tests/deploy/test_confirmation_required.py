"""A deploy that no verify stage follows would end the run succeeded while its commit-confirm
timers revert the devices afterwards: the deploy stage refuses before touching anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from lintas.engine.events import Job
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext
from lintas.workers.deploy.deploy import DeployStage


class _Boom:
    """Any use of the bus, the mirror or the logger fails the test: nothing may be touched."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the refused deploy used {name}")


def _job(downstream: list[str] | None) -> Job:
    return Job(
        job_id="r/ship/1",
        run_id="r",
        stage="ship",
        kind="deploy",
        attempt=1,
        repo="infra",
        url="/nonexistent",
        ref="refs/heads/main",
        sha="a" * 40,
        timeout_s=60,
        downstream_kinds=downstream,
    )


async def _run(job: Job, tmp_path: Path) -> Any:
    boom = cast(Any, _Boom())
    ctx = StageContext(job=job, worker_id="w", settings=Settings(home=tmp_path), log=boom, mirror=boom, topology=boom)
    return await DeployStage(Settings(home=tmp_path)).run(ctx)


async def test_deploy_without_a_verify_after_it_refuses_and_touches_nothing(tmp_path: Path) -> None:
    for downstream in ([], ["notify", "rollback"]):
        result = await _run(_job(downstream), tmp_path)
        assert result.outcome == "failed" and result.failure is not None
        assert "no verify stage follows stage ship" in result.failure.message
        assert "Nothing was deployed" in result.failure.message


async def test_deploy_with_a_verify_after_it_goes_on(tmp_path: Path) -> None:
    try:
        await _run(_job(["verify"]), tmp_path)
    except AssertionError as exc:  # it went on to read the plan from the bus: past the check
        assert "the refused deploy used" in str(exc)
    else:
        raise AssertionError("a deploy followed by verify must go on to the plan")


def test_validate_refuses_a_repo_pipeline_whose_deploy_nothing_confirms(tmp_path: Path) -> None:
    import shutil

    from lintas.engine.infra_repo import TEMPLATE_DIR
    from lintas.workers.validate import validate_tree

    repo = tmp_path / "repo"
    shutil.copytree(TEMPLATE_DIR, repo)
    (repo / ".lintas").mkdir(exist_ok=True)
    (repo / ".lintas" / "pipeline.yaml").write_text(
        "version: 1\nname: no-verify\nstages:\n  validate: {}\n  render: {needs: [validate]}\n"
        "  deploy: {needs: [render]}\n  rollback: {on_failure: [deploy]}\n"
    )
    diags, _, _ = validate_tree(repo, ".lintas/pipeline.yaml")
    [diag] = [d for d in diags if d.file == ".lintas/pipeline.yaml"]
    assert (diag.line, diag.path) == (6, "stages.deploy")
    assert "leaves its changes pending until a 'verify' stage confirms them" in diag.message
