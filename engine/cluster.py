"""A local NATS JetStream cluster: N ``nats-server`` processes with routes, loopback only.

Used by ``lintas up --cluster N`` (to try a cluster on one machine) and by the fault drills
in ``tests/cluster``. Each node has a fixed client, route and monitoring port for its whole
life, so a killed node restarts where it was, with its data.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from lintas.engine.errors import ConfigError
from lintas.engine.natsd import ensure_port_free, find_nats_server, free_port, stop_server

LOOPBACK = "127.0.0.1"


def jetstream_block(store_dir: Path, sync_interval: str | None) -> str:
    sync = f"\n  sync_interval: {sync_interval}" if sync_interval else ""
    return f"jetstream {{\n  store_dir: {json.dumps(str(store_dir))}{sync}\n}}\n"


@dataclass
class ClusterNode:
    index: int
    name: str
    data_dir: Path
    port: int
    route_port: int
    http_port: int
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ConfigError(f"{self.name} is not running")
        return self.proc.pid


class LocalCluster:
    """``async with LocalCluster(dir, 3) as url:`` — ``url`` lists every node, comma-separated."""

    def __init__(
        self,
        data_dir: Path,
        size: int = 3,
        *,
        name: str = "lintas",
        sync_interval: str | None = None,
        ports: list[int] | None = None,
    ) -> None:
        if size < 1:
            raise ConfigError(f"a cluster needs at least one node, not {size}")
        self.data_dir = data_dir
        self.cluster_name = name
        self.sync_interval = sync_interval
        client_ports = ports or [free_port(LOOPBACK) for _ in range(size)]
        if len(client_ports) != size:
            raise ConfigError(f"{size} nodes need {size} client ports, got {len(client_ports)}")
        self.nodes = [
            ClusterNode(
                i, f"{name}-n{i + 1}", data_dir / f"n{i + 1}", client_ports[i], free_port(LOOPBACK), free_port(LOOPBACK)
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def node(self, name: str) -> ClusterNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ConfigError(f"no node named {name!r} in {[n.name for n in self.nodes]}")

    def _config(self, node: ClusterNode) -> Path:
        routes = ", ".join(f"nats-route://{LOOPBACK}:{n.route_port}" for n in self.nodes if n is not node)
        text = (
            f"server_name: {node.name}\n"
            f"listen: {LOOPBACK}:{node.port}\n"
            f"http: {LOOPBACK}:{node.http_port}\n"
            + jetstream_block(node.data_dir / "jetstream", self.sync_interval)
            + f"cluster {{\n  name: {self.cluster_name}\n  listen: {LOOPBACK}:{node.route_port}\n"
            f"  routes: [{routes}]\n}}\n"
        )
        node.data_dir.mkdir(parents=True, exist_ok=True)
        conf = node.data_dir / "nats-server.conf"
        conf.write_text(text)
        return conf

    def _spawn(self, node: ClusterNode) -> None:
        for port, what in ((node.port, "client"), (node.route_port, "route"), (node.http_port, "monitoring")):
            ensure_port_free(LOOPBACK, port, f"{node.name} {what} port", "another cluster or server holds it")
        conf = self._config(node)
        log = open(node.data_dir / "nats-server.log", "ab")  # noqa: SIM115 - owned by the child
        node.proc = subprocess.Popen(
            [find_nats_server(), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    async def _wait_listening(self, node: ClusterNode, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if node.proc is None or node.proc.poll() is not None:
                code = node.proc.returncode if node.proc else None
                raise ConfigError(f"{node.name} exited with {code}; see {node.data_dir / 'nats-server.log'}")
            try:
                _r, w = await asyncio.open_connection(LOOPBACK, node.port)
                w.close()
                await w.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise ConfigError(f"{node.name} did not listen on {LOOPBACK}:{node.port} within {timeout_s}s")

    async def start(self, timeout_s: float = 30.0) -> str:
        for node in self.nodes:
            self._spawn(node)
        try:
            for node in self.nodes:
                await self._wait_listening(node, timeout_s)
            await self.wait_meta_leader(timeout_s)
        except BaseException:
            await self.stop()
            raise
        return self.url

    async def jsz(self, node: ClusterNode) -> dict[str, Any]:
        """The node's ``/jsz`` monitoring document (loopback HTTP)."""

        def get() -> dict[str, Any]:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{node.http_port}/jsz", timeout=2) as r:  # noqa: S310
                doc: dict[str, Any] = json.loads(r.read())
                return doc

        return await asyncio.to_thread(get)

    async def meta_leader(self) -> str | None:
        for node in self.nodes:
            if not node.running:
                continue
            try:
                doc = await self.jsz(node)
            except OSError:
                continue
            leader = (doc.get("meta_cluster") or {}).get("leader")
            if leader:
                return str(leader)
        return None

    async def _meta_ready(self) -> str | None:
        """The meta leader's name once it sees every running node as a current peer."""
        leader = await self.meta_leader()
        node = next((n for n in self.nodes if n.name == leader and n.running), None)
        if node is None:
            return None
        try:
            meta = (await self.jsz(node)).get("meta_cluster") or {}
        except OSError:
            return None
        current = {r["name"] for r in meta.get("replicas") or [] if r.get("current")} | {node.name}
        return leader if all(n.name in current for n in self.nodes if n.running) else None

    async def wait_meta_leader(self, timeout_s: float = 30.0) -> str:
        """Wait until a meta leader is elected and every running node has caught up with it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            leader = await self._meta_ready()
            if leader:
                return leader
            await asyncio.sleep(0.1)
        raise ConfigError(f"no JetStream meta leader with every node current within {timeout_s}s")

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL: the node vanishes without flushing or saying goodbye."""
        if node.proc is not None and node.proc.poll() is None:
            os.kill(node.proc.pid, signal.SIGKILL)
            node.proc.wait(10)

    async def restart(self, node: ClusterNode, timeout_s: float = 30.0) -> None:
        if node.running:
            raise ConfigError(f"{node.name} is still running")
        self._spawn(node)
        await self._wait_listening(node, timeout_s)

    async def stop_node(self, node: ClusterNode, timeout_s: float = 10.0) -> None:
        proc, node.proc = node.proc, None
        await stop_server(proc, timeout_s)

    async def stop(self) -> None:
        await asyncio.gather(*(self.stop_node(n) for n in self.nodes))

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
