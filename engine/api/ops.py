"""Operations: /healthz, /readyz, /metrics (Prometheus text), and GET /api/v1/targets."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import PlainTextResponse

from lintas.engine import __version__
from lintas.engine import subjects as S
from lintas.engine.api.auth import Viewer
from lintas.engine.api.context import Ctx
from lintas.engine.api.index import STAGE_BUCKETS
from lintas.engine.api.schemas import ERRORS, TargetView
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.state import RunState
from lintas.engine.targets import TargetStore

STREAMS = (S.EVENTS_STREAM, S.JOBS_STREAM, S.RESULTS_STREAM, S.LOGS_STREAM, S.NOTIFY_STREAM, S.DLQ_STREAM)


async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


async def readyz(ctx: Ctx) -> dict[str, object]:
    if not ctx.nc.is_connected:
        raise HTTPException(503, "NATS not connected")
    missing = []
    for stream in STREAMS:
        try:
            await ctx.topo.js.stream_info(stream)
        except Exception:
            missing.append(stream)
    if missing:
        raise HTTPException(503, f"streams missing: {', '.join(missing)}")
    return {"status": "ready"}


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def metrics(ctx: Ctx) -> PlainTextResponse:
    """Prometheus text format: runs by state, stage durations, queue depth, deploys, rollbacks."""
    await ctx.index.wait_ready()
    out: list[str] = []

    def family(name: str, kind: str, help_: str) -> None:
        out.extend((f"# HELP {name} {help_}", f"# TYPE {name} {kind}"))

    family("lintas_runs", "gauge", "Runs known to the API, by state.")
    states = ctx.index.states()
    for st in RunState:
        out.append(f'lintas_runs{{state="{st.value}"}} {states.get(st.value, 0)}')
    stats = ctx.index.stages
    family("lintas_stage_duration_seconds", "histogram", "Duration of finished stage attempts, by stage kind.")
    for kind in sorted(stats.buckets):
        k = _esc(kind)
        for le, n in zip(STAGE_BUCKETS, stats.buckets[kind], strict=True):
            out.append(f'lintas_stage_duration_seconds_bucket{{kind="{k}",le="{le}"}} {n}')
        out.append(f'lintas_stage_duration_seconds_bucket{{kind="{k}",le="+Inf"}} {stats.counts[kind]}')
        out.append(f'lintas_stage_duration_seconds_sum{{kind="{k}"}} {stats.sums[kind]:.6f}')
        out.append(f'lintas_stage_duration_seconds_count{{kind="{k}"}} {stats.counts[kind]}')
    family("lintas_stage_finished_total", "counter", "Finished stage attempts, by kind and outcome.")
    for (kind, status), n in sorted(stats.finished.items()):
        out.append(f'lintas_stage_finished_total{{kind="{_esc(kind)}",status="{status}"}} {n}')
    family("lintas_queue_depth", "gauge", "Jobs waiting per stage (JOBS consumer num_pending).")
    family("lintas_queue_in_flight", "gauge", "Jobs delivered and not yet acknowledged, per stage.")
    up = 1
    try:
        consumers = await _consumers(ctx)
    except Exception:
        consumers, up = [], 0
    for name, pending, in_flight in consumers:
        out.append(f'lintas_queue_depth{{stage="{_esc(name)}"}} {pending}')
        out.append(f'lintas_queue_in_flight{{stage="{_esc(name)}"}} {in_flight}')
    family("lintas_deploys_total", "counter", "Deploy stage attempts that succeeded (0 until deploys exist).")
    out.append(f"lintas_deploys_total {stats.finished.get(('deploy', 'succeeded'), 0)}")
    family("lintas_rollbacks_total", "counter", "Rollback stage attempts that succeeded (0 until rollbacks exist).")
    out.append(f"lintas_rollbacks_total {stats.finished.get(('rollback', 'succeeded'), 0)}")
    family("lintas_nats_up", "gauge", "1 when JetStream answered this scrape.")
    out.append(f"lintas_nats_up {up}")
    return PlainTextResponse("\n".join(out) + "\n", media_type="text/plain; version=0.0.4; charset=utf-8")


async def _consumers(ctx: Ctx) -> list[tuple[str, int, int]]:
    infos = await ctx.topo.js.consumers_info(S.JOBS_STREAM)
    rows = []
    for ci in infos:
        name = ci.name.removeprefix("stage-")
        rows.append((name, int(ci.num_pending or 0), int(ci.num_ack_pending or 0)))
    return sorted(rows)


async def list_targets(ctx: Ctx, _who: Viewer) -> list[TargetView]:
    """Devices and hosts with the commit and run that last deployed them (written by deploys)."""
    states = await TargetStore(ctx.topo.targets).all()
    raw = await NatsArtifactStore(ctx.topo.artifacts).get_doc(S.drift_report_doc())
    report: dict[str, Any] = json.loads(raw) if raw else {}
    drift = {str(d["target"]): d for d in report.get("targets", [])}
    checked = report.get("checked_at")
    return [
        TargetView(
            target=t.target,
            kind=t.kind,
            repo=t.repo,
            commit=t.commit,
            run_id=t.run_id,
            deployed_at=t.deployed_at,
            artifacts=t.artifacts,
            drift=drift[t.target]["state"] if t.target in drift else None,
            drift_checked_at=checked if t.target in drift else None,
            differences=[ctx.redact(x) for x in drift.get(t.target, {}).get("differences", [])],
        )
        for t in sorted(states.values(), key=lambda t: t.target)
    ]


def router() -> APIRouter:
    r = APIRouter(tags=["operations"])
    r.add_api_route("/healthz", healthz, methods=["GET"])
    r.add_api_route("/readyz", readyz, methods=["GET"], responses=ERRORS(503))
    r.add_api_route("/metrics", metrics, methods=["GET"], response_class=PlainTextResponse)
    r.add_api_route(
        "/api/v1/targets",
        list_targets,
        methods=["GET"],
        response_model=list[TargetView],
        tags=["targets"],
        responses=ERRORS(401, 403),
    )
    return r
