"""SSH to a switch with paramiko: host keys strictly from known_hosts, commands with deadlines.

Host keys are loaded from the given ``known_hosts`` file only (never the user's or the
system's files implicitly) and the missing-key policy is :class:`paramiko.RejectPolicy`:
an unknown host is refused and a changed key raises, nothing is ever added. Login is
by key (``key_file``), or by password when no key is given; agent and ``~/.ssh`` key
discovery are off, so what is used is exactly what the inventory says.

Command text is logged (it never holds a secret: secrets travel on stdin); stdin and
output are not.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko  # type: ignore[import-untyped,unused-ignore]

from lintas.workers.drivers.frr.errors import FrrAuthError, FrrCommandError, FrrConnectionError, FrrHostKeyError

log = logging.getLogger("lintas.drivers.frr")


@dataclass(frozen=True, slots=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


class SshSession:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        *,
        key_file: str | None,
        known_hosts: str,
        password: str | None = None,
        timeout: float = 60.0,
        sock_factory: Callable[[], socket.socket] | None = None,
    ) -> None:
        self.host, self.port, self.username = host, port, username
        self.key_file, self.known_hosts, self.password = key_file, known_hosts, password
        self.timeout = timeout
        # a connected socket to use instead of connecting to host:port (e.g. made in another
        # network namespace); host is still what the host key is checked against
        self.sock_factory = sock_factory
        self._client: paramiko.SSHClient | None = None

    @property
    def where(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"

    def open(self) -> None:
        kh = Path(self.known_hosts)
        if not kh.is_file():
            raise FrrHostKeyError(f"known_hosts file {kh} does not exist: host keys must be known in advance")
        client = paramiko.SSHClient()
        try:
            client.get_host_keys().load(str(kh))
        except (OSError, paramiko.SSHException) as exc:
            raise FrrHostKeyError(f"cannot read known_hosts {kh}: {exc}") from None
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        connect_timeout = min(self.timeout, 15.0)
        try:
            sock = self.sock_factory() if self.sock_factory is not None else None
        except Exception as exc:  # noqa: BLE001 - whatever the factory raises, nothing was connected
            client.close()
            raise FrrConnectionError(f"{self.where}: cannot connect: {exc}") from None
        try:
            client.connect(
                hostname=self.host,
                port=self.port,
                username=self.username,
                key_filename=self.key_file,
                password=None if self.key_file else self.password,
                look_for_keys=False,
                allow_agent=False,
                timeout=connect_timeout,
                banner_timeout=connect_timeout,
                auth_timeout=connect_timeout,
                sock=sock,
            )
        except paramiko.BadHostKeyException:
            client.close()
            raise FrrHostKeyError(
                f"{self.where}: the host key does not match {kh} (possible man-in-the-middle); refused"
            ) from None
        except paramiko.AuthenticationException:
            client.close()
            raise FrrAuthError(f"{self.where}: authentication refused") from None
        except paramiko.SSHException as exc:
            client.close()
            if "known_hosts" in str(exc):
                raise FrrHostKeyError(f"{self.where}: host key not in {kh}; unknown hosts are refused") from None
            raise FrrConnectionError(f"{self.where}: SSH failed: {exc}") from None
        except (OSError, TimeoutError) as exc:
            client.close()
            raise FrrConnectionError(f"{self.where}: cannot connect: {exc}") from None
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(5)
        self._client = client
        log.debug("ssh %s: connected", self.where)

    @property
    def alive(self) -> bool:
        t = self._client.get_transport() if self._client else None
        return bool(t and t.is_active())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def run(
        self,
        command: str,
        *,
        stdin: bytes | str | None = None,
        timeout: float | None = None,
        check: bool = False,
        what: str | None = None,
    ) -> Result:
        """Run ``command`` through the remote shell; raise on transport loss or timeout."""
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            raise FrrConnectionError(f"{self.where}: not connected")
        limit = self.timeout if timeout is None else timeout
        label = what or command.strip().splitlines()[0][:120]
        log.debug("ssh %s: run %s", self.where, label)
        started = time.monotonic()
        try:
            chan = transport.open_session(timeout=min(limit, 15.0))
            chan.settimeout(limit)
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
            chan.shutdown_write()
            out, err = self._drain(chan, started + limit, label)
            rc = chan.recv_exit_status()
            chan.close()
        except (TimeoutError, paramiko.SSHException, OSError, EOFError) as exc:
            raise FrrConnectionError(f"{self.where}: lost the session during `{label}`: {exc}") from None
        result = Result(rc, out.decode(errors="replace"), err.decode(errors="replace"))
        log.debug("ssh %s: `%s` exited %d in %.0f ms", self.where, label, rc, (time.monotonic() - started) * 1000)
        if check and rc != 0:
            raise FrrCommandError(f"{self.where}: `{label}` exited {rc}: {result.stderr.strip()[-500:]}")
        return result

    def _drain(self, chan: paramiko.Channel, deadline: float, label: str) -> tuple[bytes, bytes]:
        out, err = bytearray(), bytearray()
        pause = 0.001
        while True:
            busy = False
            while chan.recv_ready():
                out += chan.recv(65536)
                busy = True
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
                busy = True
            drained = not chan.recv_ready() and not chan.recv_stderr_ready()
            if chan.exit_status_ready() and drained and (chan.eof_received or chan.closed):
                return bytes(out), bytes(err)
            if not busy:
                if time.monotonic() > deadline:
                    chan.close()
                    raise FrrCommandError(f"{self.where}: `{label}` gave no result in time")
                if chan.closed and not chan.exit_status_ready():
                    raise FrrConnectionError(f"{self.where}: the session of `{label}` closed without a status")
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
            else:
                pause = 0.001
