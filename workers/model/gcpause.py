"""Pause the cyclic garbage collector around allocation-heavy, cycle-free work.

Building or diffing a large model allocates about a million short-lived objects
and creates no reference cycles. With the collector on, its generational passes
over the (large, live) heap cost more than the work itself: validating the
1,000-leaf benchmark fabric took 1.0 s with GC and 0.4 s without, diffing two
such models 0.55 s against 0.06 s. Reference counting still frees everything.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def settle() -> None:
    """After a job in a long-running worker: move the survivors (the cached model, the
    previous render index) to the permanent generation, so no later collection scans
    them again. Reference counting still frees them when they are replaced; only objects
    in reference cycles would stay, and models have none."""
    gc.freeze()
