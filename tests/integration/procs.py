"""Real `lintas engine` / `lintas worker` processes for crash tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from lintas.engine.settings import Settings
from tests.conftest import subprocess_env


class Proc:
    def __init__(self, settings: Settings, *args: str, log: Path) -> None:
        self.args = [sys.executable, "-m", "lintas.engine.cli.main", *args]
        self.settings = settings
        self.log = log
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        fh = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        self.p = subprocess.Popen(self.args, env=subprocess_env(self.settings), stdout=fh, stderr=subprocess.STDOUT)
        fh.close()
        return self

    @property
    def pid(self) -> int:
        assert self.p is not None
        return self.p.pid

    def kill(self) -> None:
        assert self.p is not None
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(10)

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)

    async def wait_log(self, needle: str, timeout: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.log.exists() and needle in self.log.read_text(errors="replace"):
                return
            if self.p is not None and self.p.poll() is not None:
                raise AssertionError(f"{self.args} exited {self.p.returncode}:\n{self.log.read_text()[-3000:]}")
            await asyncio.sleep(0.1)
        raise AssertionError(f"{needle!r} not in {self.log} after {timeout}s:\n{self.log.read_text()[-3000:]}")
