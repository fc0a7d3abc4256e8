"""Hostile webhook senders (issue 13, items 3 and 6): bodies are read as a stream and never
held beyond the limit, the signature is checked before any parsing, and a signed body that
is not JSON gets a 400 with the parser's reason."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import HOOK_SECRET, Api, gh_sign, served

pytestmark = pytest.mark.integration
LIMIT = 1024 * 1024  # 1 MiB for these tests; the default is 5 MiB
MB = 1024 * 1024


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@asynccontextmanager
async def rss_sampler() -> AsyncIterator[list[float]]:
    """Samples this process's RSS every 5 ms; yields [baseline, peak] (peak updated live)."""
    box = [rss_mb(), rss_mb()]

    async def sample() -> None:
        while True:
            box[1] = max(box[1], rss_mb())
            await asyncio.sleep(0.005)

    task = asyncio.create_task(sample())
    try:
        yield box
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        box[1] = max(box[1], rss_mb())


async def read_response(reader: asyncio.StreamReader, timeout: float = 30) -> bytes:
    """One HTTP/1.1 response: the head, then Content-Length bytes of body (or up to EOF)."""
    data = b""
    async with asyncio.timeout(timeout):
        while b"\r\n\r\n" not in data:
            chunk = await reader.read(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        while m and len(body) < int(m.group(1)):
            chunk = await reader.read(65536)
            if not chunk:
                break
            body += chunk
    return head + b"\r\n\r\n" + body


async def raw_post(
    base: str, path: str, headers: dict[str, str], chunks: int, chunk: bytes, *, chunked: bool
) -> tuple[int, bytes, int]:
    """POST over a raw socket so the sender can keep streaming (or stop) as an attacker would;
    returns (status, response body, bytes sent before the server answered)."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    head = f"POST {path} HTTP/1.1\r\nHost: api\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {chunks * len(chunk)}\r\n"
    writer.write((head + "\r\n").encode())
    response = asyncio.create_task(read_response(reader))
    sent = 0
    try:
        for _ in range(chunks):
            if response.done():
                break
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
            await writer.drain()
            sent += len(chunk)
        else:
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
    except ConnectionError:
        pass
    data = await asyncio.wait_for(response, 10)
    writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[-1], sent


def push_body(sha: str = "a" * 40) -> bytes:
    return json.dumps(
        {"ref": "refs/heads/main", "before": "b" * 40, "after": sha, "repository": {"full_name": "acme/infra"}}
    ).encode()


@pytest.fixture
async def small_api(make_api: Callable[..., AbstractAsyncContextManager[Api]]) -> AsyncIterator[tuple[Api, str]]:
    async with make_api(webhook_max_body_bytes=LIMIT) as api, served(api.app) as base:
        yield api, base


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_huge_body_is_refused_without_buffering_it(small_api: tuple[Api, str], chunked: bool) -> None:
    """300 MB from an unauthenticated sender: 413 after at most the limit was read, in bounded
    time and memory of the API process (this one), and the API keeps serving."""
    api, base = small_api
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Delivery": "x"}
    t0 = time.perf_counter()
    async with rss_sampler() as rss:
        status, body, sent = await raw_post(
            base, "/hooks/github", headers, 300 * 16, b"x" * (64 * 1024), chunked=chunked
        )
    elapsed = time.perf_counter() - t0
    assert status == 413, body
    assert b"payload too large" in body
    assert rss[1] - rss[0] < 64, f"RSS grew by {rss[1] - rss[0]:.0f} MB while refusing a 300 MB body"
    assert elapsed < 10
    if chunked:
        assert sent < 64 * MB  # the server answered long before the sender was done
    ok = await api.http.post(
        "/hooks/github",
        content=push_body(),
        headers={
            "X-Hub-Signature-256": gh_sign(push_body()),
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
        },
    )
    assert ok.status_code == 202, ok.text  # still serving


async def test_lying_content_length_is_caught_while_reading(small_api: tuple[Api, str]) -> None:
    """A small declared length with a chunked body of 20 MB: the stream limit still applies."""
    _api, base = small_api
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64}
    status, body, _sent = await raw_post(base, "/hooks/github", headers, 20 * 16, b"y" * (64 * 1024), chunked=True)
    assert status == 413, body


async def test_unsigned_body_is_never_parsed(small_api: tuple[Api, str]) -> None:
    """A body that would be expensive or invalid to parse gets a 401 before any parsing."""
    api, _base = small_api
    nested = b"[" * 100_000 + b"]" * 100_000
    res = await api.http.post(
        "/hooks/github", content=nested, headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "1" * 64}
    )
    assert res.status_code == 401 and res.json()["detail"] == "invalid signature"
    assert await api.event_count() == 0


@pytest.mark.parametrize("body", [b"{not json", b'{"ref": "refs/heads/main",', b"\xff\xfe"])
async def test_malformed_json_in_a_signed_webhook_is_a_400_with_the_reason(
    small_api: tuple[Api, str], body: bytes
) -> None:
    api, _base = small_api
    res = await api.http.post(
        "/hooks/github",
        content=body,
        headers={
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": gh_sign(body, HOOK_SECRET),
            "X-GitHub-Delivery": str(uuid.uuid4()),
        },
    )
    assert res.status_code == 400, res.text
    detail = res.json()["detail"]
    assert detail.startswith("malformed JSON body: ") and len(detail) > len("malformed JSON body: ")
    assert await api.event_count() == 0
