"""Read endpoints: runs (filtered, cursor-paginated), run detail, artifacts, logs (JSON or
SSE) and live run/stage transitions (SSE from the NOTIFY stream)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api

from lintas.engine import queries
from lintas.engine import subjects as S
from lintas.engine.api.auth import Viewer
from lintas.engine.api.context import ApiContext, Ctx
from lintas.engine.api.index import BadCursor
from lintas.engine.api.schemas import ERRORS, LogEntry
from lintas.engine.api.sse import follow, last_event_id, sse_response, wants_sse
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.contracts import RenderSummary, results_of
from lintas.engine.events import LogLine
from lintas.engine.redact import Redactor
from lintas.engine.state import RunState
from lintas.engine.store import RunStore
from lintas.engine.views import RunDetail, RunSummary

MAX_LOG_LINES = 10_000


def full_ref(ref: str) -> str:
    return ref if ref.startswith("refs/") else f"refs/heads/{ref}"


async def list_runs(  # noqa: PLR0913 - one parameter per query filter of GET /runs
    ctx: Ctx,
    _who: Viewer,
    request: Request,
    response: Response,
    repo: Annotated[str | None, Query(max_length=200)] = None,
    ref: Annotated[str | None, Query(max_length=250, description="branch name or full ref")] = None,
    state: RunState | None = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601; UTC if no zone)")] = None,
    cursor: Annotated[str | None, Query(max_length=500, description="opaque; from X-Next-Cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RunSummary]:
    """Runs, newest first. The next page's cursor is in ``X-Next-Cursor`` (and a ``Link: rel=next``)."""
    await ctx.index.wait_ready()
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    try:
        page, nxt = ctx.index.page(
            repo=repo,
            ref=full_ref(ref) if ref else None,
            state=state.value if state else None,
            since=since,
            limit=limit,
            cursor=cursor,
        )
    except BadCursor:
        raise HTTPException(400, "invalid cursor") from None
    if nxt:
        response.headers["X-Next-Cursor"] = nxt
        response.headers["Link"] = f'<{request.url.include_query_params(cursor=nxt)}>; rel="next"'
    return [r.masked(ctx.redact) for r in page]  # the engine's messages, git's words in them


async def get_run(ctx: Ctx, _who: Viewer, run_id: str) -> RunDetail:
    detail = await queries.get_run(ctx.topo, run_id)
    if detail is None:
        raise HTTPException(404, f"no run {run_id[:100]}")
    return ctx.redact.model(detail)  # every string of it: the engine's messages too


async def _run_or_404(ctx: ApiContext, run_id: str) -> RunDetail:
    detail = await queries.get_run(ctx.topo, run_id)
    if detail is None:
        raise HTTPException(404, f"no run {run_id[:100]}")
    return detail


def _doc_name(run: RunDetail, name: str) -> str | None:
    if name.startswith("result:"):  # a stage result too large to travel inline (summary.result_ref)
        stage = next((st for st in run.stages if st.name == name.removeprefix("result:")), None)
        ref = stage.summary.get("result_ref") if stage is not None else None
        return ref if isinstance(ref, str) and ref.startswith("result/") else None
    # the render stage's documents, found by its kind whatever the pipeline calls it (only names of their own form)
    render = next((r for _n, r in results_of(run.stages, RenderSummary)), RenderSummary())
    return {
        "plan": render.plan if (render.plan or "").startswith("plan/") else S.plan_doc(run.run_id),
        "policy": S.policy_report_doc(run.run_id),
        "secscan": S.secscan_report_doc(run.run_id),
        "render-index": render.index
        if (render.index or "").startswith("render/")
        else S.render_index_doc(run.repo, run.sha),
        "deploy": S.deploy_record_doc(run.run_id),  # per-device status, diff, checkpoint, last-known-good
        "verify": S.verify_report_doc(run.run_id, "verify"),  # every check: expected vs observed
        "rollback": S.verify_report_doc(run.run_id, "rollback"),  # the re-verification after a rollback
        "twin": S.twin_report_doc(run.run_id),  # the twin stage: what was built, timings, every check
    }.get(name)


def _redact_json(raw: bytes, redact: Redactor) -> str:
    """Redact every string of a JSON document (a regex over the raw text could cut it mid-string)."""
    try:
        return json.dumps(redact.tree(json.loads(raw)))
    except ValueError:
        return json.dumps({"error": "the stored document is not JSON"})


async def get_artifact(ctx: Ctx, _who: Viewer, run_id: str, name: str) -> Response:
    """``plan``, ``policy``, ``secscan`` (SARIF), ``render-index``, ``deploy``, ``verify``,
    ``rollback``, ``twin``, ``result:<stage>`` (a stage result stored aside for its size), or a rendered config by
    content id (``sha256:<hex>``) that this run's render index names. Text is redacted."""
    run = await _run_or_404(ctx, run_id)
    store = NatsArtifactStore(ctx.topo.artifacts)
    doc = _doc_name(run, name)
    if doc is not None:
        raw = await store.get_doc(doc)
        if raw is None:
            raise HTTPException(404, f"run {run.run_id} has no {name} artifact")
        return Response(_redact_json(raw, ctx.redact), media_type="application/json")
    if not name.startswith("sha256:"):
        raise HTTPException(
            404,
            f"unknown artifact {name[:100]!r}: plan, policy, secscan, render-index, deploy, verify, "
            "rollback, twin, result:<stage> or sha256:<id>",
        )
    index_raw = await store.get_doc(S.render_index_doc(run.repo, run.sha))
    index: dict[str, Any] = json.loads(index_raw) if index_raw else {}
    named = {cid for arts in index.get("targets", {}).values() for cid in arts.values()}
    if name not in named:
        raise HTTPException(404, f"run {run.run_id} rendered no artifact {name[:80]}")
    blob = await store.get_blob(name)
    if blob is None:
        raise HTTPException(404, f"artifact {name[:80]} is gone")
    return Response(ctx.redact(blob.decode(errors="replace")), media_type="text/plain; charset=utf-8")


async def _read_logs(ctx: ApiContext, run_id: str, after: int, limit: int) -> list[LogEntry]:
    cfg = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
    sub = await ctx.topo.js.subscribe(S.run_log(run_id), stream=S.LOGS_STREAM, config=cfg, ordered_consumer=True)
    out: list[LogEntry] = []
    try:
        while len(out) < limit:
            try:
                msg = await sub.next_msg(timeout=0.2)
            except (TimeoutError, NatsTimeout):
                break
            out.append(LogEntry(seq=msg.metadata.sequence.stream, line=LogLine.model_validate_json(msg.data)))
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return out


async def _terminal(ctx: ApiContext, run_id: str) -> bool:
    got = await RunStore(ctx.topo.runs).get(RunStore.key(run_id))
    return got is None or got[0].state.terminal


def _log_stream(ctx: ApiContext, request: Request, run_id: str, after: int | None) -> Response:
    async def done(data: bytes | None) -> bool:
        return data is None and await _terminal(ctx, run_id)

    return sse_response(
        follow(
            ctx.topo.js,
            stream=S.LOGS_STREAM,
            subject=S.run_log(run_id),
            after=after,
            event="log",
            request=request,
            done=done,
        )
    )


async def get_logs(
    ctx: Ctx,
    _who: Viewer,
    request: Request,
    run_id: str,
    last_event_id_q: Annotated[
        int | None, Query(alias="after", ge=0, description="stream sequence to start after")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_LINES)] = 1000,
) -> Response:
    """The run's log lines as JSON, or as SSE with ``Accept: text/event-stream``."""
    await _run_or_404(ctx, run_id)
    if wants_sse(request):
        return _log_stream(ctx, request, run_id, last_event_id(request, last_event_id_q))
    entries = await _read_logs(ctx, run_id, last_event_id_q or 0, limit)
    return JSONResponse([e.model_dump(mode="json") for e in entries])


async def stream_logs(
    ctx: Ctx,
    _who: Viewer,
    request: Request,
    run_id: str,
    last_event_id_q: Annotated[int | None, Query(alias="last_event_id", ge=0)] = None,
) -> Response:
    """SSE: ``event: log``, ``id:`` = stream sequence, ``data:`` = a LogLine; ``event: end`` when done."""
    await _run_or_404(ctx, run_id)
    return _log_stream(ctx, request, run_id, last_event_id(request, last_event_id_q))


async def run_events(
    ctx: Ctx,
    _who: Viewer,
    request: Request,
    run_id: str,
    last_event_id_q: Annotated[int | None, Query(alias="last_event_id", ge=0)] = None,
) -> Response:
    """SSE of one run's transitions (``event: run``, data = RunNotice); ends when it is terminal."""
    await _run_or_404(ctx, run_id)

    async def done(data: bytes | None) -> bool:
        if data is None:
            return await _terminal(ctx, run_id)
        return bool(RunState(json.loads(data)["state"]).terminal)

    return sse_response(
        follow(
            ctx.topo.js,
            stream=S.NOTIFY_STREAM,
            subject=S.notify(run_id),
            after=last_event_id(request, last_event_id_q),
            event="run",
            request=request,
            done=done,
        )
    )


async def all_events(
    ctx: Ctx,
    _who: Viewer,
    request: Request,
    last_event_id_q: Annotated[int | None, Query(alias="last_event_id", ge=0)] = None,
) -> Response:
    """SSE of every run's transitions from now on (or after ``Last-Event-ID``); never ends."""

    async def never(_data: bytes | None) -> bool:
        return False

    return sse_response(
        follow(
            ctx.topo.js,
            stream=S.NOTIFY_STREAM,
            subject=S.NOTIFY_ALL,
            new_only=True,
            after=last_event_id(request, last_event_id_q),
            event="run",
            request=request,
            done=never,
        )
    )


_SSE = {"content": {"text/event-stream": {"schema": {"type": "string"}}}, "description": "Server-Sent Events"}


def router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["runs"])
    r.add_api_route(
        "/runs",
        list_runs,
        methods=["GET"],
        response_model=list[RunSummary],
        responses={200: {"headers": {"X-Next-Cursor": {"schema": {"type": "string"}}}}, **ERRORS(400, 401, 403, 422)},
    )
    r.add_api_route(
        "/runs/{run_id}", get_run, methods=["GET"], response_model=RunDetail, responses=ERRORS(401, 403, 404, 422)
    )
    r.add_api_route(
        "/runs/{run_id}/artifacts/{name:path}",
        get_artifact,
        methods=["GET"],
        responses={200: {"content": {"application/json": {}, "text/plain": {}}}, **ERRORS(401, 403, 404, 422)},
    )
    r.add_api_route(
        "/runs/{run_id}/logs",
        get_logs,
        methods=["GET"],
        responses={
            200: {"model": list[LogEntry], "content": {"text/event-stream": {}}},
            **ERRORS(400, 401, 403, 404, 422),
        },
    )
    r.add_api_route(
        "/runs/{run_id}/logs/stream",
        stream_logs,
        methods=["GET"],
        responses={200: _SSE, **ERRORS(400, 401, 403, 404, 422)},
    )
    r.add_api_route(
        "/runs/{run_id}/events", run_events, methods=["GET"], responses={200: _SSE, **ERRORS(400, 401, 403, 404, 422)}
    )
    r.add_api_route("/events", all_events, methods=["GET"], responses={200: _SSE, **ERRORS(400, 401, 403, 422)})
    return r
