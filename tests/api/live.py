"""Real `lintas` processes for dashboard and `lintas api` tests: each with its own
LINTAS_HOME, free loopback ports, and tokens given the way an operator gives them
(LINTAS_API_TOKENS, as SHA-256 hashes)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import PLUGINS, ROOT

TOKENS = {"viewer": "ui-viewer-token-1", "operator": "ui-operator-token-2"}
NAMES = {"viewer": "vic", "operator": "olga"}


def token_env() -> str:
    return json.dumps(
        [{"name": NAMES[r], "role": r, "sha256": hashlib.sha256(t.encode()).hexdigest()} for r, t in TOKENS.items()]
    )


def lintas_env(home: Path, api_addr: str, **extra: str) -> dict[str, str]:
    """The developer's environment without any LINTAS_* of theirs, plus this test's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINTAS_")}
    env.update(
        LINTAS_HOME=str(home),
        LINTAS_API_ADDR=api_addr,
        LINTAS_API_TOKENS=token_env(),
        LINTAS_TICK_S="0.2",
        LINTAS_LOG_LEVEL="info",
        PYTHONPATH=os.pathsep.join([str(PLUGINS), str(ROOT), env.get("PYTHONPATH", "")]),
        GIT_AUTHOR_NAME="Dana Dashboard",
        GIT_AUTHOR_EMAIL="dana@example.invalid",
        GIT_COMMITTER_NAME="Dana Dashboard",
        GIT_COMMITTER_EMAIL="dana@example.invalid",
    )
    env.update(extra)
    return env


def lintas(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lintas.engine.cli.main", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Live:
    """A long-running `lintas …` child; stopped with SIGTERM (then SIGKILL) at the end."""

    def __init__(self, env: dict[str, str], *args: str, log: Path) -> None:
        self.env, self.args, self.log = env, args, log
        with open(log, "ab") as fh:
            self.p = subprocess.Popen(
                [sys.executable, "-m", "lintas.engine.cli.main", *args], env=env, stdout=fh, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise AssertionError(f"lintas {self.args} exited {self.p.returncode}:\n{self.output()[-3000:]}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{url} not ready after {timeout}s:\n{self.output()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        return self.p.returncode
