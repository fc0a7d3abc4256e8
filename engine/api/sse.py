"""Server-Sent Events from JetStream: ``id:`` is the stream sequence, so a client that
reconnects with ``Last-Event-ID: N`` gets exactly the messages after N (an ordered
consumer filtered on the subject, delivering from sequence N+1)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import HTTPException, Request
from fastapi.sse import format_sse_event
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext, api
from starlette.responses import StreamingResponse

KEEPALIVE_S = 15.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def last_event_id(request: Request, query: int | None) -> int | None:
    """``Last-Event-ID`` (header, set by EventSource on reconnect) or ``?last_event_id=``."""
    raw = request.headers.get("last-event-id")
    if raw is None:
        return query
    try:
        value = int(raw.strip())
    except ValueError:
        raise HTTPException(400, "Last-Event-ID must be a stream sequence number") from None
    if value < 0:
        raise HTTPException(400, "Last-Event-ID must be a stream sequence number")
    return value


def wants_sse(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


async def follow(  # noqa: PLR0913 - the stream's query parameters and FastAPI dependencies
    js: JetStreamContext,
    *,
    stream: str,
    subject: str,
    after: int | None,
    event: str,
    request: Request,
    done: Callable[[bytes | None], Awaitable[bool]],
    new_only: bool = False,
    idle_s: float = 0.5,
) -> AsyncIterator[bytes]:
    """Yield SSE frames for messages on ``subject`` after sequence ``after``.

    ``done(data)`` is asked after each message (with its data) and when idle (with None);
    when it says True, what is still in flight is drained and an ``end`` event closes the stream.
    """
    if after is not None:
        cfg = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
    else:
        policy = api.DeliverPolicy.NEW if new_only else api.DeliverPolicy.ALL
        cfg = api.ConsumerConfig(deliver_policy=policy)
    sub = await js.subscribe(subject, stream=stream, config=cfg, ordered_consumer=True, inactive_threshold=30)
    last_sent = time.monotonic()
    finishing = False
    try:
        yield format_sse_event(comment="connected", retry=1000)
        while True:
            try:
                msg = await sub.next_msg(timeout=idle_s)
            except (TimeoutError, NatsTimeout):
                if finishing or await done(None):
                    if not finishing:
                        finishing = True
                        continue  # one more idle round to drain in-flight messages
                    yield format_sse_event(event="end", data_str="{}")
                    return
                if await request.is_disconnected():
                    return
                if time.monotonic() - last_sent > KEEPALIVE_S:
                    last_sent = time.monotonic()
                    yield format_sse_event(comment="keepalive")
                continue
            seq = msg.metadata.sequence.stream
            last_sent = time.monotonic()
            yield format_sse_event(event=event, id=str(seq), data_str=msg.data.decode(errors="replace"))
            if not finishing and await done(msg.data):
                finishing = True
    finally:
        with contextlib.suppress(Exception):  # the connection may already be closing
            await sub.unsubscribe()


def sse_response(frames: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)
