"""`lintas api`: only the API and dashboard, as a real process, against an existing NATS
(LINTAS_NATS_URL) or the embedded one a running `lintas up` announced."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from lintas.engine.bus import Topology
from lintas.engine.natsd import free_port
from tests.api.conftest import fake_run, store_runs
from tests.api.live import TOKENS, Live, lintas, lintas_env


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


async def test_lintas_api_serves_an_existing_nats(tmp_path: Path, nats_url: str, bus: tuple[object, Topology]) -> None:
    _nc, topo = bus
    await store_runs(topo, [fake_run(1), fake_run(2)])
    addr = f"127.0.0.1:{free_port()}"
    proc = Live(lintas_env(tmp_path / "home", addr, LINTAS_NATS_URL=nats_url), "api", log=tmp_path / "api.log")
    try:
        base = f"http://{addr}"
        await asyncio.to_thread(proc.wait_ready, f"{base}/readyz")
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            assert (await http.get("/healthz")).json()["status"] == "ok"
            assert (await http.get("/api/v1/runs")).status_code == 401  # tokens from LINTAS_API_TOKENS
            runs = (await http.get("/api/v1/runs", headers=bearer("viewer"))).json()
            assert [r["run_id"] for r in runs] == [fake_run(2).run_id, fake_run(1).run_id]
            denied = await http.post(f"/api/v1/runs/{fake_run(1).run_id}/retry", headers=bearer("viewer"))
            assert denied.status_code == 403
            retried = await http.post(f"/api/v1/runs/{fake_run(1).run_id}/retry", headers=bearer("operator"))
            assert retried.status_code == 202 and retried.json()["actor"] == "olga"
            ui = await http.get("/ui/")
            assert ui.status_code == 200 and "app.js" in ui.text
    finally:
        rc = await asyncio.to_thread(proc.stop)
    out = proc.output()
    assert rc == 0, out[-2000:]
    assert f"lintas api  dashboard: http://{addr}/ui/" in out
    assert all(t not in out for t in TOKENS.values())


@pytest.mark.integration  # starts `lintas up` itself
def test_lintas_api_uses_the_embedded_nats_of_lintas_up(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up_addr, api_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    up = Live(lintas_env(home, up_addr, LINTAS_NATS_PORT=str(free_port())), "up", log=tmp_path / "up.log")
    try:
        up.wait_ready(f"http://{up_addr}/readyz")
        api = Live(lintas_env(home, api_addr), "api", log=tmp_path / "api.log")  # no LINTAS_NATS_URL
        try:
            api.wait_ready(f"http://{api_addr}/readyz")
            trig = httpx.post(
                f"http://{api_addr}/api/v1/runs", headers=bearer("operator"), json={"repo": "nope", "sha": "a" * 40}
            )
            assert trig.status_code == 404  # answered from the same home's repo registry
            nats_url = (home / "run" / "nats.url").read_text().strip()
            assert nats_url.startswith("nats://127.0.0.1:")
        finally:
            assert api.stop() == 0, api.output()[-2000:]
    finally:
        assert up.stop() == 0, up.output()[-2000:]


def test_lintas_api_without_nats_or_with_a_busy_port_is_a_clear_error(tmp_path: Path, nats_url: str) -> None:
    addr = f"127.0.0.1:{free_port()}"
    res = lintas(lintas_env(tmp_path / "home", addr), "api")  # nothing announced, no LINTAS_NATS_URL
    assert res.returncode == 2 and "no NATS" in res.stdout + res.stderr
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = f"127.0.0.1:{squatter.getsockname()[1]}"
        res = lintas(lintas_env(tmp_path / "home", busy, LINTAS_NATS_URL=nats_url), "api")
    assert (
        res.returncode == 2 and "status API" in res.stdout + res.stderr and "already in use" in res.stdout + res.stderr
    )
