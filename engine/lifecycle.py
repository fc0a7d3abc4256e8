"""Explicit lifecycles for long-lived parts: ``async with`` (or start/stop), and a clear
error when used before ``start()``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

from lintas.engine.errors import NotStartedError


class Service(ABC):
    _started: bool = False

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    def _require_started(self, what: str) -> None:
        if not self._started:
            raise NotStartedError(f"{type(self).__name__}.{what}() before start()")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
