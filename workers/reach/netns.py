"""Reaching a target through a network namespace (a twin's management network, issue 18).

A twin's switches keep their modelled management addresses, the same as the production lab's,
so they are reachable only from inside the twin's management namespace (``lt<hex>-mgmt``). A
socket keeps the network namespace it was created in, so :func:`open_socket` creates and
connects it in a short-lived thread of its own that first joins the namespace
(``setns(fd, CLONE_NEWNET)``, through libc: Python 3.11 has no ``os.setns``); the thread then
ends, the process's other threads never change namespace, and the connected socket is handed
to the caller (paramiko takes it as ``sock=``; the FRR driver as its ``sock_factory``).

The allow-list still applies: :func:`connect` checks the address against
``deploy.allowed_networks`` before any packet, whatever the namespace.

    target = Target("leaf-01", "10.255.0.21", "device", namespace="lt3f2a-mgmt")
    sock = connect(target, 22, settings)                # in lt3f2a-mgmt, never the root namespace
    factory = socket_factory(target, 22, settings)      # the same, each time it is called
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from lintas.engine.settings import Settings
from lintas.workers.reach.allowlist import ConnectError, check_address, literal_address
from lintas.workers.reach.credentials import Target

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# a twin's management namespace (workers.lab.topology.twin_instance: ``lt<4 hex>-mgmt``): the only
# namespace a command (ssh to a twin's host) is run in by name
_TWIN_MGMT = re.compile(r"lt[0-9a-f]{4}-mgmt")
_SETNS_TIMEOUT_S = 30.0


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _namespace_path(namespace: str) -> Path:
    if not _NAMESPACE.fullmatch(namespace):
        raise ConnectError(f"{namespace!r} is not a network namespace name")
    return NETNS_DIR / namespace


def twin_mgmt_namespace(namespace: str) -> str:
    """``namespace`` when it is a twin's management namespace; else :class:`ConnectError`."""
    if not _TWIN_MGMT.fullmatch(namespace):
        raise ConnectError(f"{namespace!r} is not a twin's management namespace (lt<hex>-mgmt)")
    return namespace


def open_socket(address: str, port: int, *, namespace: str | None, timeout: float = 15.0) -> socket.socket:
    """A TCP socket connected to ``address``:``port`` from inside ``namespace`` (None: this
    process's own namespace). Raises :class:`OSError` when it cannot connect; no address check
    here (see :func:`connect`)."""
    if namespace is None:
        return socket.create_connection((address, port), timeout=timeout)
    path = _namespace_path(namespace)
    box: list[socket.socket | BaseException] = []

    def inside() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            box.append(exc)
            return
        try:
            if _libc().setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                box.append(OSError(err, f"setns({namespace}): {os.strerror(err)}"))
                return
        finally:
            os.close(fd)
        try:
            box.append(socket.create_connection((address, port), timeout=timeout))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box.append(exc)

    # a thread of its own, never reused (no pool): it leaves with the namespace it joined
    t = threading.Thread(target=inside, name=f"netns-{namespace}", daemon=True)
    t.start()
    t.join(timeout + _SETNS_TIMEOUT_S)
    if not box:
        raise OSError(errno.ETIMEDOUT, f"no connection to {address}:{port} in {namespace} in time")
    got = box[0]
    if isinstance(got, BaseException):
        raise got
    return got


def connect(target: Target, port: int, settings: Settings, *, timeout: float = 15.0) -> socket.socket:
    """A socket to ``target`` (through its namespace when it has one), after the allow-list check."""
    address = literal_address(target.address, target.name)
    check_address(target.name, address, settings)
    try:
        return open_socket(address, port, namespace=target.namespace, timeout=timeout)
    except OSError as exc:
        where = f" in namespace {target.namespace}" if target.namespace else ""
        raise ConnectError(f"{target.name}: cannot connect to {address}:{port}{where}: {exc}") from None


def socket_factory(
    target: Target, port: int, settings: Settings, *, timeout: float = 15.0
) -> Callable[[], socket.socket]:
    """What a driver calls to get a connected socket to ``target`` (checked now and at each call)."""
    check_address(target.name, literal_address(target.address, target.name), settings)
    return lambda: connect(target, port, settings, timeout=timeout)
