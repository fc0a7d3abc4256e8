"""Hostile input against a real `lintas up` (issue 13): for each attack, the time to the error
and the peak memory of the process that handled it, a healthy run on another repo meanwhile,
and the API's latency during the attacks.

One `lintas up` process (engine, one worker per stage and the API in one process, as the
quick-start runs it) on an embedded nats-server. Memory is sampled from /proc every 10 ms:
the `lintas up` process itself, and separately the largest of its child processes (the
sandboxes that render templates and evaluate policies).

    .venv/bin/python -m bench.hostile [--rounds 3] [--attacks NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.common import pct, workdir
from lintas.engine.events import PushEvent, run_id_for
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.settings import Settings
from tests.conftest import subprocess_env
from tests.integration.helpers import commit, make_repo, push
from tests.security.hostile import TEMPLATE_ATTACKS, million_invalid_items, template_attack

HOOK_SECRET = "bench-hook-secret"
MB = 1024 * 1024
TERMINAL = {"succeeded", "failed", "rolled_back", "canceled", "superseded"}


# ---------------------------------------------------------------------- memory
def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as fh:
                    kids = [int(k) for k in fh.read().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


class Sampler:
    """Peak RSS of a process and, separately, of its largest descendant, every 10 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.main = self.child = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.main = max(self.main, _rss_mb(self.pid))
            for kid in _descendants(self.pid):
                self.child = max(self.child, _rss_mb(kid))
            time.sleep(0.01)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------- the stack
@dataclass
class Outcome:
    attack: str
    seconds: float
    main_peak_mb: float
    child_peak_mb: float
    state: str
    error: str
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    healthy: str = ""  # the state of the run on another repo started at the same time
    healthy_s: float = 0.0
    alive: bool = True
    stage_s: float | None = None  # how long the stage that refused it ran (checkout included)


@dataclass
class HostileStack:
    tmp: Path
    settings: Settings
    proc: subprocess.Popen[bytes]
    api: str
    repos: dict[str, Path] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    probing: bool = False
    serial: int = 0

    async def run_doc(self, http: httpx.AsyncClient, run_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            res = await http.get(f"/api/v1/runs/{run_id}")
            if res.status_code == 200 and res.json()["state"] in TERMINAL:
                doc: dict[str, Any] = res.json()
                return doc
            await asyncio.sleep(0.05)
        raise TimeoutError(f"run {run_id} not terminal in {timeout}s")

    def repo(self, name: str) -> Path:
        if name not in self.repos:
            self.repos[name] = make_repo(self.tmp, self.settings, name)
        return self.repos[name]

    async def push_change(self, name: str, files: Callable[[Path], object] | dict[str, str]) -> str:
        repo = self.repo(name)
        self.serial += 1
        if callable(files):
            files(repo)
            changes = {f"bench/{self.serial}.txt": "x\n"}
        else:
            changes = {**files, f"bench/{self.serial}.txt": "x\n"}
        sha = await asyncio.to_thread(commit, repo, self.settings, changes, f"change {self.serial}")
        await asyncio.to_thread(push, repo, self.settings)
        return run_id_for(PushEvent.dedup_key(name, "refs/heads/main", sha))

    async def settle(self, http: httpx.AsyncClient, timeout: float = 600) -> None:
        """Wait until no run is in flight (the seed runs of freshly created repos)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = (await http.get("/api/v1/runs?limit=500")).json()
            if all(r["state"] in TERMINAL for r in runs):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError("runs still in flight")

    async def probe(self, http: httpx.AsyncClient) -> None:
        """GET /api/v1/runs every 50 ms while attacks run."""
        while True:
            if self.probing:
                t0 = time.perf_counter()
                res = await http.get("/api/v1/runs?limit=50")
                if res.status_code == 200:
                    self.latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)


def _start_up(log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "lintas.engine.cli.main", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
        )


@asynccontextmanager
async def hostile_stack(tmp: Path) -> AsyncIterator[HostileStack]:
    async with EmbeddedNats(tmp / "nats", free_port()) as url:
        settings = Settings(
            home=tmp / "home",
            nats_url=url,
            api_addr=f"127.0.0.1:{free_port()}",
            job_ack_wait_s=10.0,
            tick_s=0.2,
            stage_grace_s=5.0,
        )
        settings.home.mkdir(parents=True)
        (settings.home / "webhooks.json").write_text(
            json.dumps({"healthy": {"github": "acme/healthy", "secret_ref": "env:LINTAS_BENCH_HOOK_SECRET"}})
        )
        env = {
            **subprocess_env(settings),
            "LINTAS_API_ANONYMOUS_READ": "true",
            "LINTAS_DRIFT_INTERVAL_S": "0",
            "LINTAS_BENCH_HOOK_SECRET": HOOK_SECRET,
            "LINTAS_LOG_LEVEL": "warning",
        }
        proc = _start_up(tmp / "up.log", env)
        base = f"http://{settings.api_addr}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                for _ in range(600):
                    if proc.poll() is not None:
                        raise RuntimeError(f"lintas up exited:\n{(tmp / 'up.log').read_text()[-3000:]}")
                    try:
                        if (await http.get("/healthz")).status_code < 500:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                st = HostileStack(tmp, settings, proc, base)
                prober = asyncio.create_task(st.probe(http))
                try:
                    yield st
                finally:
                    prober.cancel()
                    await asyncio.gather(prober, return_exceptions=True)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


# ---------------------------------------------------------------------- attacks
async def _pipeline_attack(st: HostileStack, name: str, change: Callable[[Path], object]) -> Outcome:
    """Push the hostile change and a healthy change to another repo at once; wait for both."""
    async with httpx.AsyncClient(base_url=st.api, timeout=30) as http:
        repo = f"{name}-{st.serial}"
        await asyncio.to_thread(st.repo, repo)  # created (and its seed run done) before the clock starts
        await st.settle(http)
        with Sampler(st.proc.pid) as mem:
            t0 = time.perf_counter()
            hostile_id, healthy_id = await asyncio.gather(
                st.push_change(repo, change),
                st.push_change("healthy", {"fabric/extra.yaml": f"vnis: [{10000 + st.serial}]\n"}),
            )
            try:
                doc = await st.run_doc(http, hostile_id, timeout=300)
            except TimeoutError:
                return Outcome(
                    name,
                    time.perf_counter() - t0,
                    mem.main,
                    mem.child,
                    "not terminal after 300 s",
                    "",
                    alive=st.proc.poll() is None,
                )
            seconds = time.perf_counter() - t0
            healthy = await st.run_doc(http, healthy_id)
            healthy_s = time.perf_counter() - t0
    failed = [s for s in doc["stages"] if s["state"] == "failed"]
    stage = failed[0] if failed else {}
    return Outcome(
        name,
        seconds,
        mem.main,
        mem.child,
        doc["state"],
        stage.get("error") or doc.get("error") or "",
        stage.get("diagnostics") or doc.get("diagnostics") or [],
        healthy["state"],
        healthy_s,
        st.proc.poll() is None,
        stage.get("duration_s"),
    )


async def _webhook_flood(st: HostileStack, chunked: bool = True) -> Outcome:
    """300 MB to /hooks/github from an unauthenticated sender, chunked (no Content-Length)."""
    url = urlsplit(st.api)
    with Sampler(st.proc.pid) as mem:
        t0 = time.perf_counter()
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(
            b"POST /hooks/github HTTP/1.1\r\nHost: api\r\nX-GitHub-Event: push\r\n"
            b"X-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        response = asyncio.create_task(read_response(reader))
        chunk = b"x" * (64 * 1024)
        try:
            for _ in range(300 * 16):
                if response.done():
                    break
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        data = await asyncio.wait_for(response, 30)
        seconds = time.perf_counter() - t0
        writer.close()
    status = data.split(b" ", 2)[1].decode() if data else "no answer"
    body = data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")
    return Outcome(
        "webhook-300MB-chunked",
        seconds,
        mem.main,
        mem.child,
        f"HTTP {status}",
        body[:200],
        alive=st.proc.poll() is None,
    )


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


def attacks() -> dict[str, Callable[[HostileStack], Awaitable[Outcome]]]:
    out: dict[str, Callable[[HostileStack], Awaitable[Outcome]]] = {
        "million-invalid-items": lambda st: _pipeline_attack(st, "million-invalid-items", million_invalid_items),
        "webhook-300MB-chunked": _webhook_flood,
    }
    for name in TEMPLATE_ATTACKS:
        out[f"template-{name}"] = (
            lambda n: lambda st: _pipeline_attack(st, f"template-{n}", lambda repo: template_attack(repo, n))
        )(name)
    return out


# ---------------------------------------------------------------------- main
def _range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


async def main(rounds: int, only: list[str] | None) -> None:
    chosen = {k: v for k, v in attacks().items() if not only or k in only}
    results: dict[str, list[Outcome]] = {k: [] for k in chosen}
    with workdir() as d:
        async with hostile_stack(d) as st:
            async with httpx.AsyncClient(base_url=st.api, timeout=60) as http:
                await st.run_doc(http, await st.push_change("healthy", {"fabric/warm.yaml": "vnis: [1]\n"}), 300)
            baseline = _rss_mb(st.proc.pid)
            st.probing = True
            for _ in range(rounds):
                for name, attack in chosen.items():
                    results[name].append(await attack(st))
            st.probing = False
    rows = {}
    for name, outs in results.items():
        last = outs[-1]
        stage_s = [o.stage_s for o in outs if o.stage_s is not None]
        rows[name] = {
            "time_to_error_s": _range([o.seconds for o in outs]),
            "stage_s": _range(stage_s) if stage_s else "n/a",
            "lintas_up_peak_rss_mb": _range([o.main_peak_mb for o in outs]),
            "largest_child_peak_rss_mb": _range([o.child_peak_mb for o in outs]),
            "outcome": f"{last.state}: {last.error[:160]}",
            "diagnostics": len(last.diagnostics),
            "healthy_run_meanwhile": sorted({o.healthy for o in outs}) if last.healthy else "n/a",
            "stack_alive": all(o.alive for o in outs),
        }
    lat = st.latencies
    print(
        json.dumps(
            {
                "bench": "hostile",
                "rounds": rounds,
                "lintas_up_baseline_rss_mb": round(baseline, 1),
                "attacks": rows,
                "api_get_runs_during_attacks": {
                    "n": len(lat),
                    "p50_ms": round(pct(lat, 50) * 1000, 1),
                    "p99_ms": round(pct(lat, 99) * 1000, 1),
                }
                if lat
                else {},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--attacks", nargs="*", default=None)
    args = ap.parse_args()
    asyncio.run(main(args.rounds, args.attacks))
