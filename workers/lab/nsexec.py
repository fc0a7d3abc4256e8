"""Start a lab switch's or host's processes in its own UTS and mount namespaces (stdlib only).

Run as ``ip netns exec lx-<node> python -I -S nsexec.py --hostname NODE --bind SRC DST ...
-- '[["/usr/lib/frr/zebra", "-d", ...], ...]'``: it detaches from the caller's mount
and UTS namespaces (mount propagation slave, so nothing leaks back to the host), sets
the hostname, bind-mounts each SRC over DST and then runs each command in turn; every
command is a daemon that forks into the background. It stops at the first command that
fails and exits with its status. It is a script, not a module of the package, so that
starting it costs only the interpreter's start.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import socket
import subprocess
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 0x80000


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def isolate(hostname: str, binds: list[tuple[str, str]]) -> None:
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare(mount, uts)")
    _check(libc.mount(None, b"/", None, MS_REC | MS_SLAVE, None), "make / a slave mount")
    socket.sethostname(hostname)
    for src, dst in binds:
        target = os.path.realpath(dst)
        if not os.path.isdir(src) or not os.path.isdir(target):
            raise OSError(f"bind {src} -> {target}: both must be existing directories")
        _check(libc.mount(src.encode(), target.encode(), None, MS_BIND, None), f"bind {src} -> {target}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="nsexec")
    ap.add_argument("--hostname", required=True)
    ap.add_argument("--bind", nargs=2, action="append", default=[], metavar=("SRC", "DST"))
    ap.add_argument("commands", help="JSON list of argument lists")
    a = ap.parse_args(argv)
    commands = json.loads(a.commands)
    try:
        isolate(a.hostname, [(s, d) for s, d in a.bind])
    except OSError as exc:
        print(f"nsexec: {exc}", file=sys.stderr)
        return 125
    for cmd in commands:
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, check=False).returncode
        if rc != 0:
            print(f"nsexec: {cmd[0]} exited {rc}", file=sys.stderr)
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
