"""Read-side queries over the run store, the logs stream and the object store, shared by the CLI and the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from nats.aio.client import Client
from nats.js import api

from lintas.engine import subjects as S
from lintas.engine.bus import Topology
from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import InputError
from lintas.engine.events import LogLine
from lintas.engine.store import RunStore
from lintas.engine.views import RunDetail, RunSummary


async def list_runs(
    topo: Topology, *, repo: str | None = None, state: str | None = None, limit: int = 50
) -> list[RunSummary]:
    store = RunStore(topo.runs)
    out = [
        RunSummary.of(run)
        async for run, _rev in store.all()
        if (repo is None or run.repo == repo) and (state is None or run.state.value == state)
    ]
    out.sort(key=lambda r: r.created_at, reverse=True)
    return out[:limit]


async def resolve_run_id(topo: Topology, given: str) -> str:
    """The run id ``given`` names: itself, or the one run whose id starts with it (`lintas runs`
    shows short ids in a terminal). Raises InputError when it names several."""
    store = RunStore(topo.runs)
    if await store.get(RunStore.key(given)) is not None:
        return given
    prefix = RunStore.key(given)
    found = [k.split(".", 1)[1] for k in await store.keys() if k.startswith(prefix)]
    if len(found) <= 1:
        return found[0] if found else given  # none: perhaps a run about to be created (`lintas wait`)
    what = f"{len(found)} runs ({', '.join(found[:5])}{', ...' if len(found) > 5 else ''})"
    raise InputError([Diagnostic(file="run id", message=f"{what} match {given!r}")], summary=f"{what} match {given!r}")


async def get_run(topo: Topology, run_id: str) -> RunDetail | None:
    try:
        run_id = await resolve_run_id(topo, run_id)
    except InputError:
        return None
    got = await RunStore(topo.runs).get(RunStore.key(run_id))
    return RunDetail.of(got[0]) if got else None


async def wait_terminal(topo: Topology, run_id: str, timeout_s: float) -> str:
    store = RunStore(topo.runs)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    state = "unknown"
    while loop.time() < deadline:
        got = await store.get(RunStore.key(run_id))
        if got is not None:
            state = got[0].state.value
            if got[0].state.terminal:
                return state
        await asyncio.sleep(0.2)
    return f"timeout ({state})"


async def stream_logs(
    nc: Client, topo: Topology, run_id: str, *, follow: bool, idle_s: float = 0.5
) -> AsyncIterator[LogLine]:
    """Replay a run's log from the start; with ``follow``, continue until the run is terminal."""
    sub = await topo.js.subscribe(
        S.run_log(run_id), ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL, stream=S.LOGS_STREAM
    )
    store = RunStore(topo.runs)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=idle_s)
            except TimeoutError:
                if not follow:
                    return
                got = await store.get(RunStore.key(run_id))
                if got is not None and got[0].state.terminal:
                    # drain what is still in flight, then stop
                    try:
                        while True:
                            msg = await sub.next_msg(timeout=idle_s)
                            yield LogLine.model_validate_json(msg.data)
                    except TimeoutError:
                        return
                continue
            yield LogLine.model_validate_json(msg.data)
    finally:
        await sub.unsubscribe()


async def get_doc_json(topo: Topology, name: str) -> dict[str, object] | None:
    """A JSON document (plan, report) from the artifact store."""
    import json

    from lintas.engine.artifacts import NatsArtifactStore

    raw = await NatsArtifactStore(topo.artifacts).get_doc(name)
    if raw is None:
        return None
    doc = json.loads(raw)
    return doc if isinstance(doc, dict) else None
