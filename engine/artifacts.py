"""Content-addressed artifact storage: rendered configs, plans and reports.

Blobs are stored by SHA-256 (``sha256:<hex>``), so identical configs are stored once
and a plan can name exactly what was deployed. Named documents (render indexes, plans)
are small JSON blobs under a name. Two backends share one contract (and one test suite):
the JetStream object store (production) and a directory (local `lintas plan`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

from nats.js.errors import NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from lintas.engine.redact import Redactor


def content_id(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ArtifactStore(Protocol):
    async def put_blob(self, data: bytes) -> str: ...

    async def get_blob(self, blob_id: str) -> bytes | None: ...

    async def put_doc(self, name: str, data: bytes) -> None: ...

    async def get_doc(self, name: str) -> bytes | None: ...


class NatsArtifactStore:
    def __init__(self, store: ObjectStore, redactor: Redactor | None = None) -> None:
        self._store = store
        self._redact = redactor

    async def put_blob(self, data: bytes) -> str:
        blob_id = content_id(data)
        try:
            await self._store.get_info(blob_id)
            return blob_id  # content-addressed: already there
        except (ObjectNotFoundError, NotFoundError):
            pass
        await self._store.put(blob_id, data)
        return blob_id

    async def get_blob(self, blob_id: str) -> bytes | None:
        return await self._get(blob_id)

    async def put_doc(self, name: str, data: bytes) -> None:
        await self._store.put(f"doc/{name}", data)

    async def get_doc(self, name: str) -> bytes | None:
        return await self._get(f"doc/{name}")

    async def _get(self, name: str) -> bytes | None:
        try:
            res = await self._store.get(name)
        except (ObjectNotFoundError, NotFoundError):
            return None
        return res.data


class DirArtifactStore:
    """The same contract on a local directory (atomic writes)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        safe = name.replace(":", "_")
        if ".." in Path(safe).parts or safe.startswith("/"):
            raise ValueError(f"bad artifact name {name!r}")
        return self.root / safe

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(path)

    async def put_blob(self, data: bytes) -> str:
        blob_id = content_id(data)
        path = self._path(f"blobs/{blob_id}")
        if not path.exists():
            self._write(path, data)
        return blob_id

    async def get_blob(self, blob_id: str) -> bytes | None:
        path = self._path(f"blobs/{blob_id}")
        return path.read_bytes() if path.exists() else None

    async def put_doc(self, name: str, data: bytes) -> None:
        self._write(self._path(f"docs/{name}"), data)

    async def get_doc(self, name: str) -> bytes | None:
        path = self._path(f"docs/{name}")
        return path.read_bytes() if path.exists() else None
