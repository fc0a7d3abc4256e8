"""Schemathesis fuzzing of the published OpenAPI schema: no 5xx, responses conform.

The app runs in this process on a real uvicorn (its own event loop in a thread, its own
NATS connection to the test's real nats-server); schemathesis drives it over HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from lintas.engine.api.app import create_app, server
from lintas.engine.bus import connect, ensure_topology
from lintas.engine.natsd import free_port
from lintas.engine.repos import RepoEntry, RepoRegistry
from lintas.engine.settings import Settings
from lintas.engine.state import RunState
from tests.api.conftest import HOOK_SECRET, api_settings, auth, fake_run, store_runs

SKIP = {"/api/v1/events"}  # never ends by design (the global live feed)


@contextmanager
def api_in_thread(settings: Settings) -> Iterator[str]:
    addr = f"127.0.0.1:{free_port()}"
    started = threading.Event()
    stop = threading.Event()
    errors: list[BaseException] = []

    async def main() -> None:
        nc = await connect(settings, settings.nats_url or "", name="fuzz")
        topo = await ensure_topology(nc.jetstream(), settings)
        await store_runs(
            topo, [fake_run(i, state=RunState.waiting_approval if i == 1 else RunState.succeeded) for i in range(1, 4)]
        )
        srv = server(create_app(nc, topo, api_settings(settings)), addr)
        task = asyncio.create_task(srv.serve())
        while not srv.started:  # noqa: ASYNC110 - polling a flag another component sets
            await asyncio.sleep(0.01)
        started.set()
        while not stop.is_set():  # noqa: ASYNC110 - polling a flag another component sets
            await asyncio.sleep(0.05)
        srv.should_exit = True
        await task
        await nc.close()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced to the test
            errors.append(exc)
            started.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    started.wait(30)
    if errors:
        raise errors[0]
    try:
        yield f"http://{addr}"
    finally:
        stop.set()
        t.join(30)


def fuzz(base: str, role: str | None) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    headers = auth(role) if role else {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path in SKIP:
            continue

        @given(case=op.as_strategy())
        @hsettings(
            max_examples=30,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            # positive_data_acceptance is excluded: some schema-valid inputs are refused on purpose
            # (an opaque cursor that does not decode: 400; an action the run's state forbids: 409)
            case.call_and_validate(headers=headers, timeout=10, excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Exception as exc:
            failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:1500]}")
    return failures


@pytest.mark.integration
async def test_openapi_schema_fuzzed_without_5xx_and_conforming(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINTAS_TEST_HOOK_SECRET", HOOK_SECRET)
    RepoRegistry(settings.home).add(RepoEntry(name="infra", url="/srv/git/infra.git"))

    def work() -> list[str]:
        with api_in_thread(settings) as base:
            return fuzz(base, None) + fuzz(base, "operator")

    failures = await asyncio.to_thread(work)
    assert not failures, "\n\n".join(failures)
