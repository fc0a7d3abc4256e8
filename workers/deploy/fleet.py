"""Run one operation on many switches at once, through nornir and the napalm drivers.

:class:`Fleet` owns a nornir (one host per device, connections kept open across waves
and polls) and the secret resolver; :meth:`Fleet.run` fans a blocking function
``fn(driver, name, **kw)`` out over a subset with bounded parallelism, in a thread, and
returns per device an :class:`Outcome`: the function's value, or its error, which keeps its
type (:class:`~workers.deploy.outcome.TargetError`: the exception's class, whether a retry can help, masked text) so
the disposition of a per-device failure survives to the stage's result.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from nornir.core.task import Result, Task

from lintas.engine.settings import Settings
from lintas.workers.deploy.connect import NAPALM, DeviceConn, build_nornir, device_conns
from lintas.workers.deploy.outcome import Outcome as Outcome
from lintas.workers.deploy.outcome import TargetError as TargetError
from lintas.workers.deploy.secrets import SecretResolver
from lintas.workers.model.model import InfraModel

T = TypeVar("T")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:600] if len(text) > 600 else text


class Fleet:
    def __init__(
        self,
        model: InfraModel,
        settings: Settings,
        names: Iterable[str],
        *,
        parallelism: int | None = None,
        resolver: SecretResolver | None = None,
        conns: dict[str, DeviceConn] | None = None,
    ) -> None:
        """``conns``: the logins to use, resolved already (a twin's); else the model's, for ``names``."""
        self.resolver = resolver or SecretResolver(settings)
        self.conns: dict[str, DeviceConn] = conns if conns is not None else device_conns(model, settings, names)
        self._nr = build_nornir(
            self.conns,
            self.resolver,
            parallelism=parallelism or settings.deploy.parallelism,
            timeout_s=settings.deploy.connect_timeout_s,
        )

    def mask(self, text: str) -> str:
        return self.resolver.mask(text)

    async def run(self, names: Iterable[str], fn: Callable[..., T], **kw: Any) -> dict[str, Outcome[T]]:
        wanted = set(names)
        if not wanted:
            return {}
        subset = self._nr.filter(filter_func=lambda h: h.name in wanted)

        def task(t: Task) -> Result:
            driver = t.host.get_connection(NAPALM, t.nornir.config)
            return Result(host=t.host, result=fn(driver, t.host.name, **kw))

        # on_failed: nornir otherwise skips, for good, every host that failed once (a poll
        # during convergence); each call here is a fresh attempt on every host asked for
        agg = await asyncio.to_thread(
            subset.run, task=task, name=getattr(fn, "__name__", "op"), raise_on_error=False, on_failed=True
        )
        self._nr.data.reset_failed_hosts()
        out: dict[str, Outcome[T]] = {}
        for name in wanted:
            multi = agg.get(name)
            if multi is None or not len(multi):
                out[name] = Outcome(None, "not run")
                continue
            r = multi[0]
            if r.failed:
                exc = r.exception
                text = self.mask(_describe(exc) if exc else str(r.result))
                out[name] = Outcome.failed(exc, text) if exc is not None else Outcome(None, text)
                self._drop(name)  # a broken session is reopened next time
            else:
                out[name] = Outcome(r.result, None)
        return out

    def _drop(self, name: str) -> None:
        host = self._nr.inventory.hosts[name]
        try:
            host.close_connection(NAPALM)
        except Exception:  # noqa: BLE001 - the session is gone already
            host.connections.pop(NAPALM, None)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing dead sessions must not mask the stage's outcome
            self._nr.close_connections(on_good=True, on_failed=True)
