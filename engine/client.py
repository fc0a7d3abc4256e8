"""Publishing ingress events: pushes (with the disk spool fallback) and control actions."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.api import Header

from engine import subjects as S
from engine.bus import connect
from engine.events import Action, ControlEvent, PushEvent
from engine.settings import Settings
from engine.spool import Spool


async def publish_push(js: JetStreamContext, event: PushEvent) -> bool:
    """Publish with the dedup id. Returns False when JetStream reports a duplicate."""
    ack = await js.publish(
        S.push_event(event.repo), event.model_dump_json().encode(), headers={Header.MSG_ID: event.event_id}
    )
    return not ack.duplicate


async def publish_control(js: JetStreamContext, event: ControlEvent) -> None:
    await js.publish(
        S.control_event(event.run_id), event.model_dump_json().encode(), headers={Header.MSG_ID: event.event_id}
    )


def control(run_id: str, action: Action, actor: str, comment: str = "") -> ControlEvent:
    now = datetime.now(UTC)
    return ControlEvent(
        event_id=f"control:{run_id}:{action}:{now.timestamp()}", occurred_at=now, run_id=run_id,
        action=action, actor=actor, comment=comment,
    )


async def emit_or_spool(settings: Settings, url: str | None, events: list[PushEvent], timeout_s: float = 3.0) -> str:
    """Used by the git hook: never fails, never blocks for long.

    Flushes older spooled events first (order matters for superseding), then publishes.
    Anything that cannot be published within ``timeout_s`` goes to the spool.
    """
    spool = Spool(settings.spool_dir)
    if url is None:
        for ev in events:
            spool.put(ev)
        return "spooled (no NATS configured)"
    nc = None
    try:
        async with asyncio.timeout(timeout_s):
            nc = await connect(settings, url, name="lintas-emit", reconnect=False)
            js = nc.jetstream(timeout=timeout_s)

            async def send(e: PushEvent) -> None:
                await publish_push(js, e)

            flushed = await spool.flush(send)
            for ev in events:
                await publish_push(js, ev)
            return f"published {len(events)} event(s)" + (f", flushed {flushed} spooled" if flushed else "")
    except Exception:  # the hook must never fail a push: whatever went wrong, keep the event
        for ev in events:
            spool.put(ev)
        return f"NATS unreachable: spooled {len(events)} event(s) in {settings.spool_dir}"
    finally:
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
