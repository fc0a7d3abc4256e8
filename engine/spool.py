"""Disk spool for events that could not be published (NATS down during a push).

One JSON file per event, written atomically; flushed in order when NATS is back.
The file name is the event id's hash, so spooling the same event twice keeps one copy.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from lintas.engine.events import PushEvent


class Spool:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def put(self, event: PushEvent) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{event.occurred_at.strftime('%Y%m%dT%H%M%S%f')}-{hashlib.sha256(event.event_id.encode()).hexdigest()[:16]}.json"
        path = self.dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(event.model_dump_json())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(path)
        return path

    def pending(self) -> list[Path]:
        if not self.dir.exists():
            return []
        return sorted(self.dir.glob("*.json"))

    async def flush(self, publish: Callable[[PushEvent], Awaitable[None]]) -> int:
        """Publish every spooled event in order; delete each only after its publish is acked.

        Stops at the first failure (NATS still down), leaving the rest for later.
        A file that does not parse is moved aside to ``*.bad`` rather than lost or retried forever.
        """
        sent = 0
        for path in self.pending():
            try:
                event = PushEvent.model_validate_json(path.read_bytes())
            except ValueError:
                path.replace(path.with_suffix(".bad"))
                continue
            await publish(event)
            path.unlink(missing_ok=True)
            sent += 1
        return sent
