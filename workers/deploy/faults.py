"""TEST ONLY: stop deploy or verify at a named point, so that a crash drill can kill it exactly there.

``LINTAS_FAULT_POINT=<point>`` in a process's environment makes that process, on reaching
``<point>``, write the marker file ``$LINTAS_HOME/faults/<point>`` and then wait for ever
(the drill kills it: ``tests/deploy/test_crash_drills.py``). ``LINTAS_FAULT_FILE=<path>``
instead names a file holding the point, read at each check and removed when the point is
reached, so that one long-lived process can be armed drill after drill. Without either
variable, which is how Lintas always runs outside those tests, every call here returns at
once and changes nothing. They are read from the environment on purpose, not from the
settings tree: they are not settings, and no configuration file can turn them on.

Points (each reached at most once per process):

- ``deploy.before_commit``: the deployment record is stored, no device committed yet;
- ``deploy.committed``: the first switch wave is committed (its revert timers run), the
  record says so, its health gate has not run;
- ``deploy.wave_healthy``: the first switch wave passed its health gate;
- ``deploy.host_mid_apply``: a host's OVSDB and Linux side are converged, its domains not
  yet (in the host's thread: the host is half-applied);
- ``verify.before_confirm``: every check passed, nothing confirmed yet;
- ``verify.partly_confirmed``: the first device of the run is confirmed on the device, the
  others are not, and the record does not know yet.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

ENV = "LINTAS_FAULT_POINT"
ENV_FILE = "LINTAS_FAULT_FILE"
POINTS = frozenset(
    {
        "deploy.before_commit",
        "deploy.committed",
        "deploy.wave_healthy",
        "deploy.host_mid_apply",
        "verify.before_confirm",
        "verify.partly_confirmed",
    }
)
_reached: set[str] = set()
_lock = threading.Lock()


def _wanted() -> str | None:
    if ENV in os.environ:
        return os.environ[ENV]
    path = os.environ.get(ENV_FILE)
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def armed(point: str) -> bool:
    return _wanted() == point and point not in _reached


def _mark(home: Path, point: str) -> bool:
    with _lock:
        if not armed(point):
            return False
        if ENV in os.environ:
            _reached.add(point)
        else:  # consumed: the next drill arms the file again
            Path(os.environ[ENV_FILE]).unlink(missing_ok=True)
    d = home / "faults"
    d.mkdir(parents=True, exist_ok=True)
    (d / point).write_text(f"{os.getpid()}\n")
    return True


async def reach(home: Path, point: str) -> None:
    """In the event loop: at ``point`` (when armed) mark it and never return."""
    if _mark(home, point):
        await asyncio.Event().wait()  # nobody sets it: the drill kills this process


def reach_blocking(home: Path, point: str) -> None:
    """In a worker thread (a host's apply): at ``point`` (when armed) mark it and block for ever."""
    if _mark(home, point):
        while True:
            time.sleep(3600)
