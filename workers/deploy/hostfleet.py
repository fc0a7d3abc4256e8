"""Run one operation on many hypervisor hosts at once: the hosts' counterpart of :class:`Fleet`.

Host operations (:mod:`workers.hosts.ops`) are blocking (libvirt, ovsdbapp, ssh); each
runs in a thread, at most ``parallelism`` hosts at a time, and every host gets either the
operation's value or its error, typed, exactly like :meth:`Fleet.run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from lintas.engine.settings import Settings
from lintas.workers.deploy.outcome import Outcome
from lintas.workers.hosts.connect import HostConn, host_conns
from lintas.workers.model.model import InfraModel

T = TypeVar("T")


class HostFleet:
    def __init__(
        self,
        model: InfraModel,
        settings: Settings,
        names: Iterable[str],
        *,
        parallelism: int | None = None,
        conns: dict[str, HostConn] | None = None,
    ) -> None:
        """``conns``: the hosts' connections made elsewhere (a twin's, :mod:`workers.twin.reach`)."""
        self.conns: dict[str, HostConn] = (
            conns if conns is not None else host_conns(model, settings, sorted(set(names)))
        )
        self._limit = asyncio.Semaphore(parallelism or settings.deploy.parallelism)
        self.timeout_s = float(settings.deploy.connect_timeout_s)

    async def run(self, names: Iterable[str], fn: Callable[..., T], **kw: Any) -> dict[str, Outcome[T]]:
        async def one(name: str) -> Outcome[T]:
            async with self._limit:
                try:
                    return Outcome(await asyncio.to_thread(fn, self.conns[name], **kw), None)
                except Exception as exc:  # noqa: BLE001 - per-host result, like Fleet.run
                    text = str(exc).strip() or type(exc).__name__
                    return Outcome.failed(exc, text[:600])

        wanted = sorted(set(names))
        results = await asyncio.gather(*(one(n) for n in wanted))
        return dict(zip(wanted, results, strict=True))
