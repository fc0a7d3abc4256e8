"""Auth per role, actions, run listing with filters and cursor pagination, metrics."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from lintas.engine.events import ControlEvent
from lintas.engine.state import RunState
from tests.api.conftest import Api, auth, fake_run, store_runs


async def test_roles_are_enforced(api: Api) -> None:
    await store_runs(api.topo, [fake_run(1, state=RunState.waiting_approval)])
    rid = fake_run(1).run_id
    nobody = await api.http.get("/api/v1/runs")
    assert nobody.status_code == 401 and nobody.headers["www-authenticate"].startswith("Bearer")
    assert (await api.http.get("/api/v1/runs", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await api.http.get("/api/v1/runs", headers={"Authorization": "Basic eDp5"})).status_code == 401
    assert (await api.http.get(f"/api/v1/runs/{rid}", headers=auth("viewer"))).status_code == 200
    assert (await api.http.get("/api/v1/targets", headers=auth("viewer"))).json() == []
    denied = await api.http.post(f"/api/v1/runs/{rid}/approve", headers=auth("viewer"), json={"comment": "x"})
    assert denied.status_code == 403 and "operator" in denied.json()["detail"]
    assert (await api.http.post(f"/api/v1/runs/{rid}/approve")).status_code == 401
    assert await api.event_count() == 0
    ok = await api.http.post(f"/api/v1/runs/{rid}/approve", headers=auth("operator"), json={"comment": "lgtm"})
    assert ok.status_code == 202 and ok.json()["actor"] == "olga"
    msg = await api.topo.js.get_last_msg("LINTAS_EVENTS", f"lintas.events.control.{rid}")
    ev = ControlEvent.model_validate_json(msg.data or b"")
    assert (ev.action, ev.actor, ev.comment, ev.run_id) == ("approve", "olga", "lgtm", rid)
    admin = await api.http.post(f"/api/v1/runs/{rid}/cancel", headers=auth("admin"))
    assert admin.status_code == 202 and admin.json()["actor"] == "adam"
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await api.http.get(path)).status_code == 200, path


async def test_actions_refuse_what_the_engine_would_ignore(api: Api) -> None:
    await store_runs(api.topo, [fake_run(1, state=RunState.running), fake_run(2, state=RunState.failed)])
    running, failed = fake_run(1).run_id, fake_run(2).run_id
    op = auth("operator")
    assert (await api.http.post(f"/api/v1/runs/{running}/approve", headers=op)).status_code == 409
    assert (await api.http.post(f"/api/v1/runs/{running}/retry", headers=op)).status_code == 409
    assert (await api.http.post(f"/api/v1/runs/{failed}/cancel", headers=op)).status_code == 409
    assert (await api.http.post("/api/v1/runs/r-nope/cancel", headers=op)).status_code == 404
    assert (await api.http.post(f"/api/v1/runs/{failed}/retry", headers=op)).status_code == 202
    assert (await api.http.post(f"/api/v1/runs/{running}/cancel", headers=op)).status_code == 202
    unknown = await api.http.post("/api/v1/runs", headers=op, json={"repo": "nope", "sha": "a" * 40})
    assert unknown.status_code == 404
    trig = await api.http.post("/api/v1/runs", headers=op, json={"repo": "infra", "ref": "main", "sha": "a" * 40})
    assert trig.status_code == 202 and trig.json()["run_id"].startswith("r-")
    assert await api.event_count() == 3


async def test_anonymous_read_is_explicit_and_never_covers_writes(
    make_api: Callable[..., AbstractAsyncContextManager[Api]],
) -> None:
    async with make_api(api_anonymous_read=True) as api:
        await store_runs(api.topo, [fake_run(1, state=RunState.waiting_approval)])
        assert (await api.http.get("/api/v1/runs")).status_code == 200
        assert (await api.http.get("/api/v1/runs", headers={"Authorization": "Bearer bad"})).status_code == 401
        assert (await api.http.post(f"/api/v1/runs/{fake_run(1).run_id}/approve")).status_code == 401
        assert (await api.http.post("/api/v1/runs", json={"repo": "infra"})).status_code == 401


async def test_filters_and_cursor_pagination_newest_first(api: Api) -> None:
    runs = [
        fake_run(i, repo="infra" if i % 2 else "other", state=RunState.failed if i % 3 == 0 else RunState.succeeded)
        for i in range(1, 12)
    ]
    await store_runs(api.topo, runs)
    h = auth("viewer")
    seen: list[str] = []
    cursor = None
    while True:
        res = await api.http.get(
            "/api/v1/runs", headers=h, params={"limit": 4, **({"cursor": cursor} if cursor else {})}
        )
        assert res.status_code == 200
        seen += [r["run_id"] for r in res.json()]
        cursor = res.headers.get("x-next-cursor")
        if cursor is None:
            break
        assert 'rel="next"' in res.headers["link"]
    assert seen == [r.run_id for r in reversed(runs)]
    infra = (await api.http.get("/api/v1/runs", headers=h, params={"repo": "infra", "state": "failed"})).json()
    assert [r["run_id"] for r in infra] == [fake_run(i).run_id for i in (9, 3)]
    since = (await api.http.get("/api/v1/runs", headers=h, params={"since": "2026-01-01T00:00:10"})).json()
    assert [r["run_id"] for r in since] == [fake_run(11).run_id, fake_run(10).run_id]
    assert len((await api.http.get("/api/v1/runs", headers=h, params={"ref": "main"})).json()) == 11
    assert (await api.http.get("/api/v1/runs", headers=h, params={"cursor": "!!"})).status_code == 400
    assert (await api.http.get("/api/v1/runs", headers=h, params={"state": "bogus"})).status_code == 422


async def test_metrics_text(api: Api) -> None:
    await store_runs(api.topo, [fake_run(1), fake_run(2, state=RunState.failed)])
    body = (await api.http.get("/metrics")).text
    assert 'lintas_runs{state="succeeded"} 1' in body and 'lintas_runs{state="failed"} 1' in body
    assert "lintas_deploys_total 0" in body and "lintas_rollbacks_total 0" in body
    assert "# TYPE lintas_stage_duration_seconds histogram" in body and "lintas_nats_up 1" in body
