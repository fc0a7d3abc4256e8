"""What every route needs, injected through ``app.state`` (no globals)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from nats.aio.client import Client

from lintas.engine.api.dedup import DeliveryLedger
from lintas.engine.api.index import RunIndex
from lintas.engine.api.settings import TokenEntry, all_tokens
from lintas.engine.bus import Topology
from lintas.engine.redact import Redactor
from lintas.engine.repos import RepoRegistry
from lintas.engine.settings import Settings


class ApiContext:
    def __init__(self, nc: Client, topo: Topology, settings: Settings, redactor: Redactor | None = None) -> None:
        self.nc = nc
        self.topo = topo
        self.settings = settings
        self.tokens: list[TokenEntry] = all_tokens(settings)
        self.registry = RepoRegistry(settings.home)
        self.index = RunIndex(topo.runs)
        self.deliveries = DeliveryLedger(topo.js, settings.webhook_dedup_ttl_s)
        self.redact = redactor or Redactor()

    async def start(self) -> None:
        await self.index.start()

    async def stop(self) -> None:
        await self.index.stop()


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.lintas
    return ctx


Ctx = Annotated[ApiContext, Depends(_ctx)]
