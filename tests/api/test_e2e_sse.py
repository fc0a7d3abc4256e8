"""End to end: a signed webhook leads to a run; SSE delivers every transition and log line,
and a reconnect with Last-Event-ID misses nothing. Real nats-server, engine, workers, uvicorn."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from lintas.engine import subjects as S
from lintas.engine.api.app import create_app
from lintas.engine.app import stack
from lintas.engine.repos import RepoRegistry
from lintas.engine.settings import Settings
from tests.api.conftest import HOOK_SECRET, api_settings, auth, gh_sign, served
from tests.integration.helpers import commit, git, make_repo, pipeline, push, run_id_of, wait_run


async def sse(
    http: httpx.AsyncClient, url: str, *, headers: dict[str, str], stop_after: int | None = None
) -> tuple[list[tuple[int, dict[str, object]]], bool]:
    """(id, data) of each event until `end` (True) or after ``stop_after`` events (False)."""
    out: list[tuple[int, dict[str, object]]] = []
    event: dict[str, str] = {}
    async with http.stream("GET", url, headers={**headers, "Accept": "text/event-stream"}) as res:
        assert res.status_code == 200 and res.headers["content-type"].startswith("text/event-stream")
        async for line in res.aiter_lines():
            if line:
                key, _, value = line.partition(": ")
                event[key] = value
                continue
            if event.get("event") == "end":
                return out, True
            if "id" in event:
                out.append((int(event["id"]), json.loads(event["data"])))
                if stop_after is not None and len(out) >= stop_after:
                    return out, False
            event = {}
    return out, False


async def stream_seqs(st_js: object, stream: str, subject: str) -> list[int]:
    from nats.js import JetStreamContext, api

    js: JetStreamContext = st_js  # type: ignore[assignment]
    sub = await js.subscribe(subject, stream=stream, ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL)
    seqs = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except Exception:
                return seqs
            seqs.append(msg.metadata.sequence.stream)
    finally:
        await sub.unsubscribe()


async def test_webhook_to_run_with_live_transitions_and_resumable_logs(
    tmp_path: Path, settings: Settings, monkeypatch: object
) -> None:
    import pytest

    mp: pytest.MonkeyPatch = monkeypatch  # type: ignore[assignment]
    mp.setenv("LINTAS_TEST_HOOK_SECRET", HOOK_SECRET)
    repo = make_repo(tmp_path, settings)
    bare = Path(RepoRegistry(settings.home).get("infra").url)  # type: ignore[union-attr]
    files = pipeline(
        "  first:\n    uses: t-sleep\n    with: {seconds: 0.3}\n"
        "  second:\n    uses: t-sleep\n    needs: [first]\n    with: {seconds: 0.3}\n"
    )
    async with stack(settings) as st:
        app = create_app(st.nc, st.topo, api_settings(settings))
        async with served(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
            # push with the hook disabled, so only the webhook can start the run
            hook = bare / "hooks" / "post-receive"
            shutil.move(hook, tmp_path / "hook.off")
            sha = commit(repo, settings, files, "via webhook")
            git(repo, "push", "origin", "HEAD:main", settings=settings)
            shutil.move(tmp_path / "hook.off", hook)
            body = json.dumps(
                {"ref": "refs/heads/main", "before": "0" * 40, "after": sha, "repository": {"full_name": "acme/infra"}}
            ).encode()
            res = await http.post(
                "/hooks/github",
                content=body,
                headers={"X-Hub-Signature-256": gh_sign(body), "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"},
            )
            assert res.status_code == 202, res.text
            rid = res.json()["run_id"]
            assert rid == run_id_of(repo, sha)  # the identity `git push` would have given
            await wait_run(st.topo, rid, states={"queued", "running", "succeeded"})
            # live transitions: read two, drop the connection, resume from the last id
            h = auth("viewer")
            first, ended = await sse(http, f"/api/v1/runs/{rid}/events", headers=h, stop_after=2)
            assert not ended
            rest, ended = await sse(
                http, f"/api/v1/runs/{rid}/events", headers={**h, "Last-Event-ID": str(first[-1][0])}
            )
            assert ended
            got = first + rest
            ids = [i for i, _ in got]
            assert ids == await stream_seqs(st.topo.js, S.NOTIFY_STREAM, S.notify(rid))  # each one, once, in order
            assert got[-1][1]["state"] == "succeeded"
            for stage in ("first", "second"):
                seen = [n["stages"].get(stage) for _, n in got]  # type: ignore[attr-defined]
                assert "running" in seen and seen[-1] == "succeeded"
                assert seen.index("running") < seen.index("succeeded")
            # logs: the same contract
            logs_a, _ = await sse(http, f"/api/v1/runs/{rid}/logs/stream", headers=h, stop_after=1)
            logs_b, ended = await sse(
                http, f"/api/v1/runs/{rid}/logs", headers={**h, "Last-Event-ID": str(logs_a[-1][0])}
            )
            assert ended
            log_ids = [i for i, _ in logs_a + logs_b]
            assert log_ids == await stream_seqs(st.topo.js, S.LOGS_STREAM, S.run_log(rid)) and len(log_ids) >= 2
            as_json = (await http.get(f"/api/v1/runs/{rid}/logs", headers=h)).json()
            assert [e["seq"] for e in as_json] == log_ids
            # the same push again via git hook identity / a new delivery: still one run
            again = await http.post(
                "/hooks/github",
                content=body,
                headers={"X-Hub-Signature-256": gh_sign(body), "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-2"},
            )
            assert again.json() == {
                **res.json(),
                "status": "duplicate",
                "detail": "push already received (git hook or earlier webhook)",
            }
            runs = (await http.get("/api/v1/runs", headers=h, params={"repo": "infra"})).json()
            assert [r["run_id"] for r in runs].count(rid) == 1
            assert (await wait_run(st.topo, rid)).state.value == "succeeded"
            # and a git push after: hook and webhook agree on the run id
            sha2 = commit(repo, settings, {"b.yaml": "b: 2\n"}, "via hook")
            push(repo, settings)
            body2 = body.replace(sha.encode(), sha2.encode())
            dup = await http.post(
                "/hooks/github",
                content=body2,
                headers={"X-Hub-Signature-256": gh_sign(body2), "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-3"},
            )
            assert dup.json()["run_id"] == run_id_of(repo, sha2) and dup.json()["status"] == "duplicate"
