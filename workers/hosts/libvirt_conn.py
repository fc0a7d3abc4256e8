"""Opening libvirt connections, with a keepalive that works.

libvirt's client sends keepalive probes only when the process runs a libvirt event loop
(``virEventRegisterDefaultImpl`` before the first connection, and a thread running
``virEventRunDefaultImpl``); without one, ``setKeepAlive`` is refused ("perhaps it's missing
event loop implementation") and a call to a host that stops answering (the host died, its
link went down, its libvirtd hangs) waits for ever, holding the stage. The loop is
process-wide in libvirt itself, so it is started once per process, on first use.

A connection is used by **one thread at a time** (:class:`Serialized`): libvirt 9.0's client,
with that loop running, crashes the process (SIGSEGV in ``virNetClientIOEventFD``, seen in CI
and reproduced by 4 threads calling one connection for 20 s) when several threads call on one
connection at once; serialized, the same load runs clean and about 40 times faster than
concurrent calls without the loop (libvirt's "buck passing" between waiting threads).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Self

# libvirt's event implementation is process-wide state of the C library: one loop per process
_EVENTS_LOCK = threading.Lock()
_events_started = threading.Event()

KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3


class LibvirtConnError(RuntimeError):
    """A libvirt connection could not be opened."""


def libvirt_module() -> Any:
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors are raised, not printed
    _start_events(libvirt)
    return libvirt


def _start_events(lv: Any) -> None:
    if _events_started.is_set():
        return
    with _EVENTS_LOCK:
        if _events_started.is_set():
            return
        lv.virEventRegisterDefaultImpl()
        threading.Thread(target=_run_events, args=(lv,), name="libvirt-events", daemon=True).start()
        _events_started.set()


def _run_events(lv: Any) -> None:
    while True:
        lv.virEventRunDefaultImpl()


class Serialized:
    """A libvirt object (a connection, or a domain of it) whose every method call holds the
    connection's lock; libvirt objects it returns (domains, lists of them) share that lock.

    Work meant to run in parallel (domains converged or restored at once) takes a connection per
    thread (:meth:`reopen`): one lock would serialize a slow call such as a domain's ``destroy``."""

    __slots__ = ("_lock", "_obj", "_reopen")

    def __init__(self, obj: Any, lock: threading.RLock, reopen: Callable[[], Serialized] | None = None) -> None:
        self._obj = obj
        self._lock = lock
        self._reopen = reopen

    @classmethod
    def connection(cls, conn: Any, reopen: Callable[[], Serialized] | None = None) -> Self:
        return cls(conn, threading.RLock(), reopen)

    def reopen(self) -> Serialized:
        """Another connection to the same URI, for another thread (itself for an in-process driver,
        ``test://``, whose state belongs to the connection)."""
        return self if self._reopen is None else self._reopen()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._obj, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return self._wrap(attr(*args, **kwargs))

        return call

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._wrap(v) for v in value]
        if type(value).__module__ == "libvirt" and not isinstance(value, BaseException):
            return Serialized(value, self._lock)
        return value


def open_conn(uri: str, *, readonly: bool, keepalive: tuple[int, int] = (KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)) -> Any:
    """A connection to ``uri`` (:class:`Serialized`). Over libvirt's remote driver (a unix socket, SSH, TLS) it probes
    every ``keepalive[0]`` s of silence and gives up after ``keepalive[1]`` unanswered probes:
    a call to a host that stopped answering then fails (``keepalive[0] * (keepalive[1] + 1)`` s
    or so), never hangs. Drivers without a connection of their own (``test:///``) have none."""
    lv = libvirt_module()
    try:
        conn = lv.openReadOnly(uri) if readonly else lv.open(uri)
    except lv.libvirtError as exc:
        raise LibvirtConnError(f"libvirt {redact_uri(uri)}: cannot connect: {exc.get_error_message()}") from exc
    try:
        conn.setKeepAlive(*keepalive)
    except lv.libvirtError as exc:
        if exc.get_error_code() != lv.VIR_ERR_NO_SUPPORT:  # test:/// and other in-process drivers
            conn.close()
            raise LibvirtConnError(f"libvirt {redact_uri(uri)}: no keepalive: {exc.get_error_message()}") from exc
    if uri.startswith("test:"):
        return Serialized.connection(conn)
    return Serialized.connection(conn, lambda: open_conn(uri, readonly=readonly, keepalive=keepalive))


def redact_uri(uri: str) -> str:
    """The URI without its query (key and known_hosts paths stay out of logs)."""
    return uri.split("?", 1)[0]
