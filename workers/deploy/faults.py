"""TEST ONLY: stop deploy or verify at a named point, so that a crash drill can kill it exactly there.

``LINTAS_FAULT_POINT=<point>`` in a process's environment makes that process, on reaching
``<point>``, write the marker file ``$LINTAS_HOME/faults/<point>`` and then wait for ever
(the drill kills it: ``tests/deploy/test_crash_drills.py``). Without the variable, which is
how Lintas always runs outside those tests, every call here returns at once and changes
nothing. It is read from the environment on purpose, not from the settings tree: it is
not a setting, and no configuration file can turn it on.

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
POINTS = frozenset({"deploy.before_commit", "deploy.committed", "deploy.wave_healthy", "deploy.host_mid_apply",
                    "verify.before_confirm", "verify.partly_confirmed"})
_reached: set[str] = set()
_lock = threading.Lock()


def armed(point: str) -> bool:
    return os.environ.get(ENV) == point and point not in _reached


def _mark(home: Path, point: str) -> bool:
    with _lock:
        if not armed(point):
            return False
        _reached.add(point)
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
