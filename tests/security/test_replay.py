"""Stale and replayed pushes never roll production back (issue 13, item 4).

One real stack (nats-server, engine, a t-noop worker, the API) for the module, one repo
per test. The duplicate windows (JetStream and the webhook delivery ledger) are 1 s here,
so a replay "after the window" takes a second instead of two hours.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from lintas.engine.api.settings import WebhookRepo
from lintas.engine.app import Stack, build_stages, stack
from lintas.engine.client import publish_push
from lintas.engine.events import PushEvent, manual_event_id, run_id_for
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.settings import Settings, StreamLimits
from lintas.engine.state import Run, RunState
from lintas.engine.targets import TargetState, TargetStore
from tests.api.conftest import HOOK_SECRET, gh_sign
from tests.integration.helpers import commit, git, make_repo, pipeline, push, run_id_of, wait_run

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
WINDOW_S = 1.0
NAMES = ("replayed", "captured", "spooled", "reset", "operator")
PIPE = pipeline("  deploy:\n    uses: t-noop\n    with: {mark: true}\n")


@dataclass
class Env:
    st: Stack
    settings: Settings
    tmp: Path
    api: str


@pytest.fixture(scope="module")
def _secret() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LINTAS_TEST_HOOK_SECRET", HOOK_SECRET)
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, _secret: None) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("replay")
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
            webhook_dedup_ttl_s=WINDOW_S,
            streams=StreamLimits(events_duplicate_window_s=WINDOW_S),
            webhooks={n: WebhookRepo(github=f"acme/{n}", secret_ref="env:LINTAS_TEST_HOOK_SECRET") for n in NAMES},
        )
        async with stack(settings, stages=build_stages(settings, ["t-noop"]), api=True) as st:
            yield Env(st, settings, tmp, f"http://{settings.api_addr}")


def executions(settings: Settings, run_id: str) -> int:
    mark = settings.home / "marks" / f"{run_id}.deploy"
    return len(mark.read_text().splitlines()) if mark.exists() else 0


def repo_with_two_commits(env: Env, name: str, *, push_first: bool = True) -> tuple[Path, str, str]:
    repo = make_repo(env.tmp, env.settings, name)
    a = commit(repo, env.settings, PIPE, "A")
    if push_first:
        push(repo, env.settings)
    b = commit(repo, env.settings, {"fabric/extra.yaml": "vnis: [10030]\n"}, "B")
    return repo, a, b


async def signed_push(env: Env, name: str, sha: str, before: str, delivery: str) -> httpx.Response:
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "before": before,
            "after": sha,
            "repository": {"full_name": f"acme/{name}"},
            "head_commit": {"id": sha, "message": "A", "author": {"name": "Ann", "email": "a@x"}},
        }
    ).encode()
    headers = {"X-Hub-Signature-256": gh_sign(body), "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery}
    async with httpx.AsyncClient(base_url=env.api) as http:
        return await http.post("/hooks/github", content=body, headers=headers)


async def test_signed_webhook_replayed_after_the_window_never_runs_an_old_commit_again(env: Env) -> None:
    repo, a, b = repo_with_two_commits(env, "replayed")  # A pushed: its run comes from the hook
    first = await signed_push(env, "replayed", a, "0" * 40, "delivery-1")  # and the provider's webhook for it
    assert first.status_code in (200, 202), first.text
    run_a = await wait_run(env.st.topo, first.json()["run_id"])
    assert run_a.state is RunState.succeeded and executions(env.settings, run_a.run_id) == 1
    push(repo, env.settings)
    run_b = await wait_run(env.st.topo, run_id_of(repo, b))
    assert run_b.state is RunState.succeeded
    await asyncio.sleep(WINDOW_S + 1.5)  # past both duplicate windows
    replay = await signed_push(env, "replayed", a, "0" * 40, "delivery-2-new-id")
    assert replay.status_code in (200, 202), replay.text  # the signature is valid: accepted at the door
    await asyncio.sleep(1.0)
    again = await wait_run(env.st.topo, run_a.run_id)
    assert again.finished_at == run_a.finished_at and executions(env.settings, run_a.run_id) == 1
    assert executions(env.settings, run_b.run_id) == 1


async def test_a_captured_webhook_for_an_older_commit_is_refused_as_stale(env: Env) -> None:
    """The provider's webhook for A never reached Lintas (it was down); B was pushed since. The
    attacker replays the captured delivery for A after the window: the run is refused."""
    repo, a, b = repo_with_two_commits(env, "captured", push_first=False)
    push(repo, env.settings)
    run_b = await wait_run(env.st.topo, run_id_of(repo, b))
    assert run_b.state is RunState.succeeded
    await asyncio.sleep(WINDOW_S + 0.5)
    res = await signed_push(env, "captured", a, "0" * 40, str(uuid.uuid4()))
    assert res.status_code == 202, res.text
    run = await wait_run(env.st.topo, res.json()["run_id"])
    assert run.sha == a and run.source == "webhook"
    assert run.state is RunState.superseded
    assert run.error and run.error.startswith(
        f"stale push: {a[:12]} is no longer the head of refs/heads/main (head: {b[:12]})"
    )
    assert run.stages == {} and executions(env.settings, run.run_id) == 0


async def test_a_late_spooled_hook_event_is_refused(env: Env) -> None:
    repo, a, b = repo_with_two_commits(env, "spooled", push_first=False)
    push(repo, env.settings)
    await wait_run(env.st.topo, run_id_of(repo, b))
    late = PushEvent(
        event_id=PushEvent.dedup_key("spooled", "refs/heads/main", a),
        occurred_at=datetime.now(UTC),
        repo="spooled",
        url=str(repo.with_name("spooled.git")),
        ref="refs/heads/main",
        sha=a,
    )
    await publish_push(env.st.topo.js, late)
    run = await wait_run(env.st.topo, late.run_id)
    assert run.state is RunState.superseded and "no longer the head" in (run.error or "")
    assert executions(env.settings, run.run_id) == 0


async def deployed(env: Env, name: str, sha: str) -> None:
    """What a deploy stage records after a confirmed deploy (engine/targets.py)."""
    await TargetStore(env.st.topo.targets).put(
        TargetState(
            target=f"leaf-{name}",
            kind="device",
            repo=name,
            commit=sha,
            run_id="r-deploy",
            deployed_at=datetime.now(UTC),
        )
    )


async def test_a_branch_reset_below_the_deployed_commit_is_refused_and_an_operator_may_override(env: Env) -> None:
    repo, a, b = repo_with_two_commits(env, "reset")
    run_a = await wait_run(env.st.topo, run_id_of(repo, a))
    push(repo, env.settings)
    assert (await wait_run(env.st.topo, run_id_of(repo, b))).state is RunState.succeeded
    await deployed(env, "reset", b)
    await asyncio.sleep(WINDOW_S + 0.5)
    git(repo, "reset", "-q", "--hard", a, settings=env.settings)
    out = git(repo, "push", "-f", "origin", "HEAD:main", settings=env.settings)  # the hook emits A again
    assert "published" in out.stderr, out.stderr
    await asyncio.sleep(1.0)
    again = await wait_run(env.st.topo, run_a.run_id)
    assert again.finished_at == run_a.finished_at  # same identity as the first push of A: a duplicate
    # A new identity for the old commit (a spooled or forged hook event): refused, B is deployed
    ev = PushEvent(
        event_id=f"forged:{uuid.uuid4()}",
        occurred_at=datetime.now(UTC),
        repo="reset",
        url=str(repo.with_name("reset.git")),
        ref="refs/heads/main",
        sha=a,
    )
    await publish_push(env.st.topo.js, ev)
    run = await wait_run(env.st.topo, ev.run_id)
    assert run.state is RunState.failed, run.error
    assert run.error == (
        f"stale push: {a[:12]} is older than {b[:12]}, already deployed from reset; "
        "only `lintas trigger --sha` by an operator may deploy an older commit"
    )
    assert executions(env.settings, run.run_id) == 0
    # the operator's explicit trigger of the old commit runs, and says so on the run
    op = PushEvent(
        event_id=manual_event_id(),
        occurred_at=datetime.now(UTC),
        repo="reset",
        url=str(repo.with_name("reset.git")),
        ref="refs/heads/main",
        sha=a,
        author="olga",
        message="manual trigger",
        source="manual",
    )
    await publish_push(env.st.topo.js, op)
    manual: Run = await wait_run(env.st.topo, op.run_id)
    assert manual.state is RunState.succeeded and executions(env.settings, manual.run_id) == 1
    assert manual.source == "manual"
    assert manual.warnings == [f"operator trigger by olga of {a[:12]}, which is older than {b[:12]}, already deployed"]


async def test_an_operator_retry_of_an_old_run_is_recorded_as_such(env: Env) -> None:
    from lintas.engine.client import control, publish_control

    repo, a, b = repo_with_two_commits(env, "operator")
    run_a = await wait_run(env.st.topo, run_id_of(repo, a))
    push(repo, env.settings)
    await wait_run(env.st.topo, run_id_of(repo, b))
    ctl = control(run_a.run_id, "retry", "olga")
    await publish_control(env.st.topo.js, ctl)
    retry_id = run_id_for(f"retry:{run_a.run_id}:{ctl.event_id}")
    retry = await wait_run(env.st.topo, retry_id)
    assert retry.state is RunState.succeeded and retry.retry_of == run_a.run_id and retry.source == "retry"
    assert retry.warnings == [
        f"operator retry by olga of {a[:12]}, which is not the head of refs/heads/main (head: {b[:12]})"
    ]
    assert executions(env.settings, retry_id) == 1
