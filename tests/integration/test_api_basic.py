"""The status API served by the stack, over real HTTP on loopback."""

from __future__ import annotations

from pathlib import Path

import httpx

from lintas.engine.app import stack
from lintas.engine.natsd import free_port
from lintas.engine.settings import Settings
from tests.integration.helpers import commit, make_repo, push, run_id_of, wait_run


async def test_api_serves_runs_health_and_readiness(tmp_path: Path, settings: Settings) -> None:
    # reads without a token (tests/api covers auth); LINTAS_API_ANONYMOUS_READ=true in the environment
    settings = settings.model_copy(update={"api_addr": f"127.0.0.1:{free_port()}", "api_anonymous_read": True})
    repo = make_repo(tmp_path, settings)
    async with stack(settings, api=True) as st:
        sha = commit(repo, settings, {"a.yaml": "a: 1\n"}, "api")
        push(repo, settings)
        rid = run_id_of(repo, sha)
        await wait_run(st.topo, rid)
        async with httpx.AsyncClient(base_url=f"http://{settings.api_addr}") as http:
            assert (await http.get("/healthz")).json()["status"] == "ok"
            assert (await http.get("/readyz")).status_code == 200
            runs = (await http.get("/api/v1/runs", params={"repo": "infra"})).json()
            assert rid in [r["run_id"] for r in runs]
            detail = (await http.get(f"/api/v1/runs/{rid}")).json()
            assert detail["state"] == "succeeded" and detail["stages"][0]["name"] == "validate"
            assert (await http.get("/api/v1/runs/r-nope")).status_code == 404
            assert (await http.get("/api/v1/runs", params={"limit": 0})).status_code == 422
            assert "/api/v1/runs/{run_id}" in (await http.get("/openapi.json")).json()["paths"]


async def test_ports_in_use_are_a_clear_error_not_a_stranger_s_server(tmp_path: Path, settings: Settings) -> None:
    import socket

    import pytest

    from lintas.engine.errors import ConfigError

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        embedded = settings.model_copy(update={"nats_url": None, "nats_port": port, "home": tmp_path / "h"})
        with pytest.raises(ConfigError, match=f"embedded nats-server: 127.0.0.1:{port} is already in use"):
            async with stack(embedded):
                pass
        api_busy = settings.model_copy(update={"api_addr": f"127.0.0.1:{port}"})
        with pytest.raises(ConfigError, match="status API: .* already in use"):
            async with stack(api_busy, api=True):
                pass
