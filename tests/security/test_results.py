"""Results too large for one message, or that cannot be published (issue 13, item 2): the run
still ends with the reason and its (capped) diagnostics; the job is never redelivered in a loop."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from lintas.engine import subjects as S
from lintas.engine.app import Stack, build_stages, stack
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.settings import Settings
from lintas.engine.state import Run, RunState
from tests.integration.helpers import commit, make_repo, pipeline, push, run_id_of, wait_run

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
INLINE, MAX = 64 * 1024, 8 * 1024 * 1024


@dataclass
class Env:
    st: Stack
    settings: Settings
    repo: Path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("results")
    async with EmbeddedNats(tmp / "nats", free_port()) as url:
        settings = Settings(
            home=tmp / "home",
            nats_url=url,
            job_ack_wait_s=2.0,
            job_max_deliver=3,
            job_nak_delay_s=0.1,
            tick_s=0.2,
            stage_grace_s=2.0,
            api_addr=f"127.0.0.1:{free_port()}",
            result_inline_max_bytes=INLINE,
            result_max_bytes=MAX,
            api_anonymous_read=True,
        )
        repo = make_repo(tmp, settings, "big")
        # The repo's first commit was spooled (no NATS when it was pushed). Its pipeline is the
        # template's, whose stages this stack does not serve: its run would hold the branch until
        # its stage deadlines unless a later push made it stale first (a race). Drop it.
        shutil.rmtree(settings.spool_dir, ignore_errors=True)
        async with stack(settings, stages=build_stages(settings, ["t-big", "t-noop"]), api=True) as st:
            yield Env(st, settings, repo)


async def run_with(env: Env, options: str) -> Run:
    """A run whose one stage is t-big with these options (a commit pushed per call)."""
    sha = commit(env.repo, env.settings, pipeline(f"  big:\n    uses: t-big\n    with: {options}\n"), options)
    push(env.repo, env.settings)
    return await wait_run(env.st.topo, run_id_of(env.repo, sha), timeout=90)


async def test_a_large_result_goes_to_the_object_store_with_a_reference(env: Env) -> None:
    run = await run_with(env, "{bytes: 300000}")
    assert run.state is RunState.succeeded, run.error
    summary = run.stages["big"].summary
    ref = S.result_doc(run.run_id, "big", 1)
    assert summary["result_ref"] == ref and summary["small"] == "kept" and summary["result_omitted"] == ["blob"]
    assert summary["result_bytes"] > 300000
    full = json.loads(await NatsArtifactStore(env.st.topo.artifacts).get_doc(ref) or b"{}")
    assert full["summary"]["blob"] == "x" * 300000 and full["outcome"] == "succeeded"
    assert run.stages["big"].deliveries == 1
    async with httpx.AsyncClient(base_url=f"http://{env.settings.api_addr}") as http:
        res = await http.get(f"/api/v1/runs/{run.run_id}/artifacts/result:big")
        assert res.status_code == 200 and res.json()["summary"]["blob"] == "x" * 300000
        assert (await http.get(f"/api/v1/runs/{run.run_id}/artifacts/result:nope")).status_code == 404


async def test_twenty_thousand_diagnostics_reach_the_run_capped(env: Env) -> None:
    """The issue's case: 20,000 errors used to make the result larger than the NATS max payload."""
    run = await run_with(env, "{diagnostics: 20000}")
    stage = run.stages["big"]
    assert run.state is RunState.failed and stage.status.value == "failed"
    assert stage.error == "20000 problems" and stage.deliveries == 1
    assert len(stage.diagnostics) == 101 and stage.diagnostics[0].file == "big.yaml"
    assert stage.diagnostics[-1].message == "... and 19900 more problem(s) not shown (20000 in total)"
    full = json.loads(await NatsArtifactStore(env.st.topo.artifacts).get_doc(stage.summary["result_ref"]) or b"{}")
    assert len(full["failure"]["diagnostics"]) == 20000  # the whole list, aside


async def test_a_result_over_the_maximum_fails_the_attempt_with_the_reason(env: Env) -> None:
    run = await run_with(env, "{bytes: 9000000, diagnostics: 5}")
    stage = run.stages["big"]
    assert run.state is RunState.failed and stage.deliveries == 1 and stage.attempt == 1
    assert stage.error is not None and stage.error.startswith("the stage's result is too large (")
    assert f"> {MAX}, LINTAS_RESULT_MAX_BYTES)" in stage.error
    assert [d.line for d in stage.diagnostics] == [1, 2, 3, 4, 5]  # still on the run
    assert "result_ref" not in stage.summary


async def test_a_result_that_cannot_be_serialised_fails_the_attempt_and_the_worker_keeps_serving(env: Env) -> None:
    run = await run_with(env, "{unserialisable: true}")
    stage = run.stages["big"]
    assert run.state is RunState.failed and stage.deliveries == 1
    assert (stage.error or "").startswith("the stage's result cannot be serialised: ")
    ok = await run_with(env, "{bytes: 10}")
    assert ok.state is RunState.succeeded


async def test_a_result_quoting_a_secret_leaves_the_worker_masked(env: Env) -> None:
    """Non-negotiable 7: a stage's own result (not only its log and its exceptions) is masked by the
    worker before it is published: the result event, the run, `lintas show --json` and the API."""
    said = "hunter2-Xq9v"
    run = await run_with(env, f"{{leak: {said}}}")
    stage = run.stages["big"]
    assert run.state is RunState.failed
    assert stage.error == "the device answered password=****"
    assert stage.diagnostics[0].message == "api_key=****"
    assert stage.summary["device"]["said"] == ["password=****"] and stage.summary["token: ****"] == 1
    assert "secret: ****" in run.warnings
    assert said not in stage.model_dump_json() and said not in " ".join(run.warnings)
    assert said not in (run.error or "")
    event = await env.st.topo.js.get_last_msg(S.RESULTS_STREAM, S.result(run.run_id))
    assert said not in (event.data or b"").decode()  # the result event itself
    async with httpx.AsyncClient(base_url=f"http://{env.settings.api_addr}") as http:
        res = await http.get(f"/api/v1/runs/{run.run_id}")
        assert res.status_code == 200
        [view] = [st for st in res.json()["stages"] if st["name"] == "big"]
        assert said not in json.dumps(view) and view["error"] == "the device answered password=****"


async def test_what_the_engine_writes_itself_is_masked_in_the_run_the_api_and_the_cli(env: Env) -> None:
    """The engine's own words (here a pipeline rejection quoting the repo's pipeline file, and a run's
    commit message naming a credentialed clone URL) never went through a worker's masking: the engine
    masks the rejection it saves, and the API and `lintas show`/`lintas runs` mask every run they serve."""
    said, token = "kestrel-Pw55", "glpat-Zr81TsQa"
    files = pipeline(f"  x:\n    uses: 'password={said}'\n")
    message = f"mirror from https://oauth2:{token}@gitlab.example.invalid/infra.git"
    sha = commit(env.repo, env.settings, files, message)
    push(env.repo, env.settings)
    run = await wait_run(env.st.topo, run_id_of(env.repo, sha), timeout=90)
    assert run.state is RunState.failed
    assert "invalid pipeline" in (run.error or "") and said not in run.model_dump_json()
    assert any("unknown stage kind 'password=****" in d.message for d in run.diagnostics), run.diagnostics
    async with httpx.AsyncClient(base_url=f"http://{env.settings.api_addr}") as http:
        one = (await http.get(f"/api/v1/runs/{run.run_id}")).json()
        rows = (await http.get("/api/v1/runs", params={"limit": 500})).json()
    [row] = [r for r in rows if r["run_id"] == run.run_id]
    for view in (one, row):
        assert view["message"] == "mirror from https://oauth2:****@gitlab.example.invalid/infra.git", view
        assert said not in json.dumps(view) and token not in json.dumps(view)
    cli = {**os.environ, "LINTAS_HOME": str(env.settings.home), "LINTAS_NATS_URL": env.settings.nats_url}
    for argv in (["show", run.run_id, "--json"], ["runs", "--json", "--limit", "500"]):
        cmd = [sys.executable, "-m", "lintas.engine.cli.main", *argv]
        out = await asyncio.to_thread(subprocess.run, cmd, env=cli, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "oauth2:****@gitlab" in out.stdout and token not in out.stdout and said not in out.stdout
