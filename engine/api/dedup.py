"""Webhook delivery ledger: a create-only KV key per delivery id, expiring after a TTL.

A replayed delivery (same provider delivery id) finds its key and creates nothing.
The push itself is also deduplicated by JetStream (``Nats-Msg-Id`` = repo@ref@sha),
so a webhook and the git hook for the same push give one run.
"""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from lintas.engine import subjects as S

DELIVERIES_BUCKET = S.WEBHOOK_DELIVERIES_BUCKET


def delivery_key(provider: str, delivery_id: str) -> str:
    return f"delivery.{S.token(provider)}.{S.token(delivery_id)}"


class DeliveryLedger:
    def __init__(self, js: JetStreamContext, ttl_s: float) -> None:
        self._js = js
        self._ttl_s = ttl_s
        self._kv: KeyValue | None = None
        self._lock = asyncio.Lock()

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            async with self._lock:
                if self._kv is None:
                    try:
                        self._kv = await self._js.key_value(DELIVERIES_BUCKET)
                    except (NotFoundError, BadRequestError):
                        cfg = api.KeyValueConfig(bucket=DELIVERIES_BUCKET, history=1, ttl=self._ttl_s)
                        try:
                            self._kv = await self._js.create_key_value(cfg)
                        except BadRequestError:
                            self._kv = await self._js.key_value(DELIVERIES_BUCKET)
        return self._kv

    async def claim(self, provider: str, delivery_id: str, run_id: str) -> bool:
        """True if this delivery is new (and is now recorded); False for a replay."""
        kv = await self._bucket()
        try:
            await kv.create(delivery_key(provider, delivery_id), run_id.encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def release(self, provider: str, delivery_id: str) -> None:
        """Forget a claim whose push could not be published, so the sender's retry works."""
        kv = await self._bucket()
        await kv.purge(delivery_key(provider, delivery_id))
