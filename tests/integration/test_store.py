"""CasStore on real JetStream KV: compare-and-set, and exact listing while writes go on."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from lintas.engine.app import nats_session
from lintas.engine.errors import ConflictError
from lintas.engine.settings import Settings
from lintas.engine.store import CasStore


class Doc(BaseModel):
    n: int


async def test_compare_and_set_and_exact_keys_under_concurrent_writes(settings: Settings) -> None:
    async with nats_session(settings, name="t") as (_nc, topo):
        store = CasStore(topo.journal, Doc)
        rev = await store.create("a", Doc(n=1))
        assert rev is not None and await store.create("a", Doc(n=2)) is None  # create is create-only
        rev2 = await store.update("a", Doc(n=2), rev)
        with pytest.raises(ConflictError):
            await store.update("a", Doc(n=3), rev)  # stale revision loses
        got = await store.get("a")
        assert got is not None and got[0].n == 2 and got[1] == rev2

        async def churn() -> None:  # keep rewriting existing keys while we list
            for i in range(300):
                await topo.journal.put("a", Doc(n=i).model_dump_json().encode())

        await asyncio.gather(*(store.create(f"k{i:03d}", Doc(n=i)) for i in range(200)))
        task = asyncio.create_task(churn())
        listings = [await store.keys() for _ in range(10)]
        await task
        want = sorted(["a", *(f"k{i:03d}" for i in range(200))])
        assert all(keys == want for keys in listings)
