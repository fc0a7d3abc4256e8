"""`lintas up --detach` / `lintas down`: the stack as a background process of this LINTAS_HOME."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lintas.engine.errors import ConfigError
from lintas.engine.settings import Settings


def pid_file(settings: Settings) -> Path:
    return settings.run_dir / "up.pid"


def ready_file(settings: Settings) -> Path:
    return settings.run_dir / "up.ready"


def log_file(settings: Settings) -> Path:
    return settings.home / "logs" / "up.log"


def mark_ready(settings: Settings) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    ready_file(settings).write_text(str(os.getpid()))


def clear_ready(settings: Settings) -> None:
    ready_file(settings).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def running_pid(settings: Settings) -> int | None:
    f = pid_file(settings)
    if not f.exists():
        return None
    pid = int(f.read_text().strip() or 0)
    return pid if pid and _alive(pid) else None


def start_detached(settings: Settings, args: list[str], timeout_s: float = 60.0) -> int:
    if (pid := running_pid(settings)) is not None:
        raise ConfigError(f"lintas is already running for {settings.home} (pid {pid})")
    log = log_file(settings)
    log.parent.mkdir(parents=True, exist_ok=True)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    clear_ready(settings)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lintas.engine.cli.main", *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid_file(settings).write_text(str(proc.pid))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready_file(settings).exists():
            return proc.pid
        if proc.poll() is not None:
            raise ConfigError(f"lintas up exited with {proc.returncode}; see {log}")
        time.sleep(0.1)
    raise ConfigError(f"lintas up not ready after {timeout_s:.0f}s; see {log}")


def stop_detached(settings: Settings, timeout_s: float) -> bool:
    pid = running_pid(settings)
    if pid is None:
        pid_file(settings).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    pid_file(settings).unlink(missing_ok=True)
    return True
