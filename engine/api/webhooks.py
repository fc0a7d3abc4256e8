"""POST /hooks/github|gitlab|gitea: signed pushes become the same PushEvent as `git push`.

Order of checks: body size (read as a stream, at most the limit, with or without a
Content-Length), signature (against every configured secret for the provider, constant
time) before any JSON parsing, event type, payload, repository match, delivery dedup,
publish.
Nothing is created unless every check passed. The fetch URL comes only from
server-side configuration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Literal

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from lintas.engine.api.context import ApiContext, Ctx
from lintas.engine.api.hookparse import (
    HookError,
    Provider,
    gitea_signature_ok,
    github_signature_ok,
    gitlab_token_ok,
    parse_push,
)
from lintas.engine.api.schemas import ERRORS
from lintas.engine.api.secrets import resolve_secret
from lintas.engine.api.settings import WebhookRepo, all_webhooks
from lintas.engine.client import publish_push
from lintas.engine.errors import ConfigError
from lintas.engine.events import PushEvent

log = structlog.get_logger("lintas.api.hooks")

_SIG_HEADER = {"github": "x-hub-signature-256", "gitea": "x-gitea-signature", "gitlab": "x-gitlab-token"}
_EVENT_HEADER = {"github": "x-github-event", "gitea": "x-gitea-event", "gitlab": "x-gitlab-event"}
_PUSH_EVENT = {"github": "push", "gitea": "push", "gitlab": "Push Hook"}
_DELIVERY_HEADERS = {
    "github": ("x-github-delivery",),
    "gitea": ("x-gitea-delivery",),
    "gitlab": ("idempotency-key", "x-gitlab-event-uuid"),
}


class HookResult(BaseModel):
    status: Literal["accepted", "duplicate", "ignored", "pong"]
    run_id: str | None = None
    event_id: str | None = None
    detail: str | None = None


def _verified(ctx_hooks: dict[str, WebhookRepo], provider: Provider, body: bytes, header: str | None) -> list[str]:
    """Names of configured repos whose secret verifies this request (all are checked)."""
    names = []
    for name, entry in ctx_hooks.items():
        if getattr(entry, provider) is None:
            continue
        try:
            secret = resolve_secret(entry.secret_ref)
        except ConfigError as exc:
            log.warning("webhook secret unavailable", repo=name, error=str(exc))
            continue
        ok = (
            gitlab_token_ok(secret, header)
            if provider == "gitlab"
            else github_signature_ok(secret, body, header)
            if provider == "github"
            else gitea_signature_ok(secret, body, header)
        )
        if ok:
            names.append(name)
    return names


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The body, streamed: never more than ``limit`` bytes are held, whatever the headers say
    (a chunked request has no Content-Length; a lying one is caught while reading)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise HookError(400, "invalid Content-Length header")
        if int(length) > limit:
            raise HookError(413, f"payload too large (more than {limit} bytes)")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise HookError(413, f"payload too large (more than {limit} bytes)")
    return bytes(buf)


async def _handle(ctx: Ctx, request: Request, provider: Provider) -> HookResult:
    body = await read_limited_body(request, ctx.settings.webhook_max_body_bytes)
    header = request.headers.get(_SIG_HEADER[provider])
    if not header:
        raise HookError(401, f"missing {_SIG_HEADER[provider]} header")
    hooks = all_webhooks(ctx.settings)
    verified = _verified(hooks, provider, body, header)
    if not verified:
        raise HookError(401, "invalid signature" if provider != "gitlab" else "invalid token")
    event = request.headers.get(_EVENT_HEADER[provider], "")
    if provider == "github" and event == "ping":
        return HookResult(status="pong", detail="pong")
    if event != _PUSH_EVENT[provider]:
        raise HookError(400, f"unsupported {provider} event {event[:60]!r}: only push events start runs")
    push = parse_push(provider, body)
    name = next(
        (n for n in verified if (getattr(hooks[n], provider) or "").casefold() == push.repo_id.casefold()), None
    )
    if name is None:
        if any((getattr(e, provider) or "").casefold() == push.repo_id.casefold() for e in hooks.values()):
            raise HookError(401, "signature does not match the repository's secret")
        raise HookError(404, f"unknown repository {push.repo_id[:200]!r}: not configured for {provider} webhooks")
    if push.deleted:
        return HookResult(status="ignored", detail="branch deleted: nothing to deploy")
    registered = ctx.registry.get(name)
    url = hooks[name].url or (registered.url if registered else None)
    if url is None:
        raise HookError(404, f"repository {name!r} has no fetch URL: add it to the repo registry")
    event_id = PushEvent.dedup_key(name, push.ref, push.sha)
    try:
        ev = PushEvent(
            event_id=event_id,
            occurred_at=datetime.now(UTC),
            repo=name,
            url=url,
            ref=push.ref,
            before=push.before,
            sha=push.sha,
            author=push.author,
            message=push.message,
            source="webhook",
        )
    except ValueError as exc:
        raise HookError(422, f"push cannot be accepted: {str(exc).splitlines()[0][:200]}") from None
    delivery = next((v for h in _DELIVERY_HEADERS[provider] if (v := request.headers.get(h))), None)
    if delivery is not None and not await ctx.deliveries.claim(provider, delivery[:200], ev.run_id):
        log.info("webhook delivery replayed: ignored", provider=provider, repo=name, delivery=delivery[:80])
        return HookResult(status="duplicate", run_id=ev.run_id, event_id=event_id, detail="delivery already received")
    try:
        fresh = await publish_push(ctx.topo.js, ev)
    except Exception as exc:
        if delivery is not None:
            await ctx.deliveries.release(provider, delivery[:200])
        log.warning("webhook push not published", provider=provider, repo=name, error=repr(exc))
        raise HookError(503, "event bus unavailable: retry later") from None
    log.info("webhook push", provider=provider, repo=name, ref=push.ref, sha=push.sha, run=ev.run_id, new=fresh)
    return HookResult(
        status="accepted" if fresh else "duplicate",
        run_id=ev.run_id,
        event_id=event_id,
        detail=None if fresh else "push already received (git hook or earlier webhook)",
    )


def _endpoint(provider: Provider) -> Callable[[ApiContext, Request], Awaitable[JSONResponse]]:
    async def hook(ctx: Ctx, request: Request) -> JSONResponse:
        try:
            res = await _handle(ctx, request, provider)
        except HookError as exc:
            headers = {"WWW-Authenticate": "Signature"} if exc.status == 401 else None
            return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)
        code = 202 if res.status == "accepted" else 200
        return JSONResponse(res.model_dump(), status_code=code)

    hook.__name__ = f"{provider}_webhook"
    hook.__doc__ = f"A {provider} webhook; authenticated by its signature only (no bearer token)."
    return hook


_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


def router() -> APIRouter:
    r = APIRouter(prefix="/hooks", tags=["webhooks"])
    for provider in ("github", "gitlab", "gitea"):
        r.add_api_route(
            f"/{provider}",
            _endpoint(provider),
            methods=["POST"],
            response_model=HookResult,
            status_code=202,
            openapi_extra=_BODY,
            responses={
                200: {"model": HookResult, "description": "pong, duplicate or ignored"},
                **ERRORS(400, 401, 404, 413, 422, 503),
            },
        )
    return r
