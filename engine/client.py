"""Publishing ingress events: pushes (with the disk spool fallback) and control actions."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from nats.js import JetStreamContext

from lintas.engine import subjects as S
from lintas.engine.bus import DEFAULT_RETRY_S, connect, publish_acked
from lintas.engine.events import Action, ControlEvent, PushEvent
from lintas.engine.settings import Settings
from lintas.engine.spool import Spool


async def publish_push(js: JetStreamContext, event: PushEvent, *, deadline_s: float = DEFAULT_RETRY_S) -> bool:
    """Publish with the dedup id, retried (same id) across node loss until acknowledged.
    Returns False when JetStream reports a duplicate."""
    ack = await publish_acked(
        js, S.push_event(event.repo), event.model_dump_json().encode(), msg_id=event.event_id, deadline_s=deadline_s
    )
    return not ack.duplicate


async def publish_control(js: JetStreamContext, event: ControlEvent) -> None:
    await publish_acked(js, S.control_event(event.run_id), event.model_dump_json().encode(), msg_id=event.event_id)


def control(run_id: str, action: Action, actor: str, comment: str = "") -> ControlEvent:
    now = datetime.now(UTC)
    return ControlEvent(
        event_id=f"control:{run_id}:{action}:{now.timestamp()}",
        occurred_at=now,
        run_id=run_id,
        action=action,
        actor=actor,
        comment=comment,
    )


async def emit_or_spool(
    settings: Settings, url: str | None, events: list[PushEvent], timeout_s: float | None = None
) -> str:
    """Used by the git hook: never fails, never blocks for long.

    Flushes older spooled events first (order matters for superseding), then publishes the new
    ones (each retried with its own id across a node loss). When the budget
    (``LINTAS_EMIT_TIMEOUT_S``) runs out, only the events the cluster has *not* acknowledged go
    to the spool; one acknowledged but spooled anyway (its ack was lost) is dropped as a
    duplicate when the spool is flushed.
    """
    budget = timeout_s if timeout_s is not None else settings.emit_timeout_s
    spool = Spool(settings.spool_dir)
    if url is None:
        for ev in events:
            spool.put(ev)
        return "spooled (no NATS configured)"
    acked: set[str] = set()
    flushed = 0
    nc = None
    try:
        async with asyncio.timeout(budget):
            nc = await connect(settings, url, name="lintas-emit", quiet=True)
            js = nc.jetstream(timeout=budget)

            async def send(e: PushEvent) -> None:
                await publish_push(js, e, deadline_s=budget)

            flushed = await spool.flush(send)

            async def one(ev: PushEvent) -> None:
                await publish_push(js, ev, deadline_s=budget)
                acked.add(ev.event_id)

            await asyncio.gather(*(one(ev) for ev in events))  # one ref per event: order within a push is free
            return f"published {len(events)} event(s)" + (f", flushed {flushed} spooled" if flushed else "")
    except Exception:  # the hook must never fail a push: whatever went wrong, keep the event
        missing = [ev for ev in events if ev.event_id not in acked]
        for ev in missing:
            spool.put(ev)
        return (
            f"NATS unreachable: published {len(events) - len(missing)}, spooled {len(missing)} event(s) "
            f"in {settings.spool_dir}"
        )
    finally:
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()


async def flush_spool(settings: Settings, url: str, timeout_s: float = 10.0) -> int:
    """Publish what the hook spooled on this machine; returns how many were sent.
    Raises when NATS does not answer (the rest stays spooled)."""
    spool = Spool(settings.spool_dir)
    if not spool.pending():
        return 0
    nc = await connect(settings, url, name="lintas-spool", quiet=True)
    try:
        js = nc.jetstream(timeout=timeout_s)

        async def send(e: PushEvent) -> None:
            await publish_push(js, e, deadline_s=timeout_s)

        return await spool.flush(send)
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
