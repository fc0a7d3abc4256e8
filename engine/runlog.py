"""Per-run log lines on ``lintas.runs.<id>.log`` (captured by the LOGS stream)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import structlog
from nats.aio.client import Client

from lintas.engine import subjects as S
from lintas.engine.events import LogLine
from lintas.engine.redact import Redactor

_log = structlog.get_logger("lintas.run")
Level = Literal["debug", "info", "warning", "error"]


class RunLogger:
    """Fire-and-forget publisher; the stream persists. Secrets are masked before leaving."""

    def __init__(
        self,
        nc: Client,
        run_id: str,
        *,
        stage: str | None = None,
        worker: str | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self._nc = nc
        self.run_id = run_id
        self.stage = stage
        self.worker = worker
        self._redact = redactor or Redactor()

    async def emit(self, level: Level, message: str) -> None:
        message = self._redact(message)
        line = LogLine(
            run_id=self.run_id,
            stage=self.stage,
            ts=datetime.now(UTC),
            level=level,
            message=message,
            worker=self.worker,
        )
        getattr(_log, level)(message, run=self.run_id, stage=self.stage)
        if self._nc.is_connected:
            await self._nc.publish(S.run_log(self.run_id), line.model_dump_json().encode())

    async def info(self, message: str) -> None:
        await self.emit("info", message)

    async def warning(self, message: str) -> None:
        await self.emit("warning", message)

    async def error(self, message: str) -> None:
        await self.emit("error", message)
