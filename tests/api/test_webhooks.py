"""Webhook signatures, dedup and repo matching, against the real app on a real nats-server."""

from __future__ import annotations

import json
import uuid

from lintas.engine.api.hookparse import gitea_signature_ok, github_signature_ok, hmac_sha256_hex
from lintas.engine.events import PushEvent, run_id_for
from tests.api.conftest import HOOK_SECRET, Api, gh_sign

SHA = "a" * 40
BEFORE = "b" * 40


def github_push(full_name: str = "acme/infra", sha: str = SHA, **extra: object) -> bytes:
    payload = {
        "ref": "refs/heads/main",
        "before": BEFORE,
        "after": sha,
        "repository": {"full_name": full_name, "clone_url": "https://evil.example/steal.git"},
        "head_commit": {"id": sha, "message": "change vlans\n\nbody", "author": {"name": "Ann", "email": "a@x"}},
        "pusher": {"name": "ann"},
        "unknown_field": {"nested": True},
        **extra,
    }
    return json.dumps(payload).encode()


def gh_headers(
    body: bytes, *, event: str = "push", delivery: str | None = None, secret: str = HOOK_SECRET
) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": gh_sign(body, secret),
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "Content-Type": "application/json",
    }


def test_documented_github_test_vector() -> None:
    secret, body = b"It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert "sha256=" + hmac_sha256_hex(secret, body) == expected
    assert github_signature_ok(secret, body, expected)
    assert not github_signature_ok(secret, body + b" ", expected)
    assert not github_signature_ok(secret, body, expected.removeprefix("sha256="))  # prefix required
    assert gitea_signature_ok(secret, body, expected.removeprefix("sha256="))


async def test_valid_github_push_publishes_the_git_push_identity(api: Api) -> None:
    body = github_push()
    res = await api.http.post("/hooks/github", content=body, headers=gh_headers(body))
    assert res.status_code == 202, res.text
    event_id = PushEvent.dedup_key("infra", "refs/heads/main", SHA)
    assert res.json() == {"status": "accepted", "run_id": run_id_for(event_id), "event_id": event_id, "detail": None}
    assert await api.event_count() == 1
    msg = await api.topo.js.get_last_msg("LINTAS_EVENTS", "lintas.events.push.infra")
    ev = PushEvent.model_validate_json(msg.data or b"")
    assert ev.url == "/srv/git/infra.git"  # from the server-side registry, never the payload's clone_url
    assert (ev.source, ev.sha, ev.before, ev.author, ev.message) == (
        "webhook",
        SHA,
        BEFORE,
        "Ann <a@x>",
        "change vlans\n\nbody",
    )
    assert ev.event_id == event_id


async def test_bad_signatures_get_401_and_create_nothing(api: Api) -> None:
    body = github_push()
    wrong = await api.http.post("/hooks/github", content=body, headers=gh_headers(body, secret="not-the-secret"))
    headers = gh_headers(body)
    del headers["X-Hub-Signature-256"]
    missing = await api.http.post("/hooks/github", content=body, headers=headers)
    signed = gh_headers(body)
    tampered_body = body.replace(b"acme/infra", b"acme/infrb")
    tampered = await api.http.post("/hooks/github", content=tampered_body, headers=signed)
    garbage = await api.http.post("/hooks/github", content=body, headers={**signed, "X-Hub-Signature-256": "sha256=zz"})
    for res in (wrong, missing, tampered, garbage):
        assert res.status_code == 401, res.text
    assert "missing x-hub-signature-256" in missing.json()["detail"]
    assert wrong.json()["detail"] == "invalid signature"
    assert await api.event_count() == 0


async def test_replayed_delivery_creates_nothing(api: Api) -> None:
    body = github_push()
    headers = gh_headers(body, delivery="delivery-1")
    first = await api.http.post("/hooks/github", content=body, headers=headers)
    again = await api.http.post("/hooks/github", content=body, headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["status"] == "duplicate" and again.json()["detail"] == "delivery already received"
    assert again.json()["run_id"] == first.json()["run_id"]
    # a new delivery of the same push (e.g. the git hook already sent it): JetStream drops it
    other = await api.http.post("/hooks/github", content=body, headers=gh_headers(body, delivery="delivery-2"))
    assert other.status_code == 200 and other.json()["status"] == "duplicate"
    assert await api.event_count() == 1


async def test_ping_non_push_unknown_repo_and_bad_payload(api: Api) -> None:
    ping = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    res = await api.http.post("/hooks/github", content=ping, headers=gh_headers(ping, event="ping"))
    assert res.status_code == 200 and res.json()["status"] == "pong"
    body = github_push()
    res = await api.http.post("/hooks/github", content=body, headers=gh_headers(body, event="issues"))
    assert res.status_code == 400 and "only push events" in res.json()["detail"]
    body = github_push("acme/other")
    res = await api.http.post("/hooks/github", content=body, headers=gh_headers(body))
    assert res.status_code == 404 and "unknown repository 'acme/other'" in res.json()["detail"]
    body = json.dumps(
        {"ref": "refs/heads/main", "after": "not-a-sha", "repository": {"full_name": "acme/infra"}}
    ).encode()
    res = await api.http.post("/hooks/github", content=body, headers=gh_headers(body))
    assert res.status_code == 422 and "after" in res.json()["detail"]
    body = github_push(sha="0" * 40, deleted=True)
    res = await api.http.post("/hooks/github", content=body, headers=gh_headers(body))
    assert res.status_code == 200 and res.json()["status"] == "ignored"
    assert await api.event_count() == 0


async def test_gitlab_token_and_idempotency_key(api: Api) -> None:
    body = json.dumps(
        {
            "object_kind": "push",
            "ref": "refs/heads/main",
            "before": BEFORE,
            "after": SHA,
            "user_name": "Gil",
            "project": {"path_with_namespace": "acme/infra", "git_http_url": "https://evil.example/x.git"},
            "commits": [{"id": SHA, "message": "gl change", "author": {"name": "Gil", "email": "g@x"}}],
        }
    ).encode()
    base = {"X-Gitlab-Event": "Push Hook", "Content-Type": "application/json"}
    wrong = await api.http.post("/hooks/gitlab", content=body, headers={**base, "X-Gitlab-Token": "nope"})
    missing = await api.http.post("/hooks/gitlab", content=body, headers=base)
    assert wrong.status_code == 401 and missing.status_code == 401
    assert await api.event_count() == 0
    headers = {**base, "X-Gitlab-Token": HOOK_SECRET, "Idempotency-Key": "k-1", "X-Gitlab-Event-UUID": "u-1"}
    ok = await api.http.post("/hooks/gitlab", content=body, headers=headers)
    assert ok.status_code == 202, ok.text
    assert ok.json()["event_id"] == PushEvent.dedup_key("infra", "refs/heads/main", SHA)
    replay = await api.http.post("/hooks/gitlab", content=body, headers=headers)
    assert replay.json()["detail"] == "delivery already received"
    tag = await api.http.post("/hooks/gitlab", content=body, headers={**headers, "X-Gitlab-Event": "Tag Push Hook"})
    assert tag.status_code == 400
    assert await api.event_count() == 1


async def test_gitea_signature(api: Api) -> None:
    body = github_push()
    sig = hmac_sha256_hex(HOOK_SECRET.encode(), body)
    base = {"X-Gitea-Event": "push", "X-Gitea-Delivery": "g-1", "Content-Type": "application/json"}
    bad = await api.http.post("/hooks/gitea", content=body, headers={**base, "X-Gitea-Signature": "0" * 64})
    assert bad.status_code == 401 and await api.event_count() == 0
    ok = await api.http.post("/hooks/gitea", content=body, headers={**base, "X-Gitea-Signature": sig})
    assert ok.status_code == 202, ok.text
    assert await api.event_count() == 1


async def test_secret_never_appears_in_responses_or_schema(api: Api) -> None:
    body = github_push()
    res = await api.http.post("/hooks/github", content=body, headers=gh_headers(body, secret="x"))
    schema = await api.http.get("/openapi.json")
    assert HOOK_SECRET not in res.text and HOOK_SECRET not in schema.text
