"""One contract for both artifact backends: the JetStream object store and a directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lintas.engine.app import nats_session
from lintas.engine.artifacts import ArtifactStore, DirArtifactStore, NatsArtifactStore, content_id
from lintas.engine.settings import Settings


@pytest.fixture(params=["nats", "dir"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, settings: Settings) -> AsyncIterator[ArtifactStore]:
    if request.param == "dir":
        yield DirArtifactStore(tmp_path / "artifacts")
        return
    async with nats_session(settings, name="t") as (_nc, topo):
        yield NatsArtifactStore(topo.artifacts)


async def test_blobs_are_content_addressed_and_docs_are_named(store: ArtifactStore) -> None:
    a = await store.put_blob(b"hostname leaf-01\n")
    assert a == content_id(b"hostname leaf-01\n") and a.startswith("sha256:")
    assert await store.put_blob(b"hostname leaf-01\n") == a  # stored once
    assert await store.get_blob(a) == b"hostname leaf-01\n"
    assert await store.get_blob(content_id(b"nope")) is None
    big = b"x" * 3_000_000  # bigger than one object-store chunk
    assert await store.get_blob(await store.put_blob(big)) == big
    await store.put_doc("render/infra/abc.json", b"{}")
    await store.put_doc("render/infra/abc.json", b'{"v": 2}')  # docs are overwritten
    assert await store.get_doc("render/infra/abc.json") == b'{"v": 2}'
    assert await store.get_doc("render/infra/missing.json") is None
