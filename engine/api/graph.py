"""GET /api/v1/runs/{id}/graph: the run's stage DAG (``needs`` and ``on_failure`` edges,
with a layout depth per stage), which the run detail alone does not carry."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from lintas.engine.api.auth import Viewer
from lintas.engine.api.context import Ctx
from lintas.engine.api.schemas import ERRORS, GraphNode, RunGraph
from lintas.engine.state import Run
from lintas.engine.store import RunStore


def _depths(needs: dict[str, list[str]], handles: dict[str, list[str]]) -> dict[str, int]:
    """Longest path from a root over ``needs``; a failure handler sits right after the
    deepest stage it handles. Unknown names and cycles (never stored: the pipeline is
    validated) count as roots rather than failing."""
    depth: dict[str, int] = {}

    def of(name: str, seen: frozenset[str]) -> int:
        if name in depth:
            return depth[name]
        if name in seen or (name not in needs and name not in handles):
            return 0
        seen = seen | {name}
        before = [*needs.get(name, []), *handles.get(name, [])]
        d = 1 + max((of(n, seen) for n in before), default=-1)
        depth[name] = d
        return d

    for name in [*needs, *handles]:
        of(name, frozenset())
    return depth


def graph_of(run: Run) -> RunGraph:
    spec = run.pipeline.stages if run.pipeline else {}
    names = list(spec) + [n for n in run.stages if n not in spec]
    needs = {n: list(spec[n].needs) if n in spec else [] for n in names}
    handles = {n: list(spec[n].on_failure) for n in names if n in spec and spec[n].on_failure}
    depth = _depths(needs, handles)
    nodes = []
    for name in names:
        rec = run.stages.get(name)
        s = spec.get(name)
        nodes.append(
            GraphNode(
                name=name,
                kind=rec.kind if rec else (s.kind if s else name),
                state=rec.status.value if rec else "pending",
                needs=needs[name],
                on_failure=handles.get(name, []),
                approval=s.approval if s else "none",
                awaiting_approval=bool(rec and rec.awaiting_approval),
                depth=depth.get(name, 0),
            )
        )
    return RunGraph(run_id=run.run_id, pipeline=run.pipeline.name if run.pipeline else None, stages=nodes)


async def get_graph(ctx: Ctx, _who: Viewer, run_id: str) -> RunGraph:
    """The stage graph of a run, for the dashboard: nodes in pipeline order with their edges."""
    got = await RunStore(ctx.topo.runs).get(RunStore.key(run_id))
    if got is None:
        raise HTTPException(404, f"no run {run_id[:100]}")
    return graph_of(got[0])


def router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["runs"])
    r.add_api_route(
        "/runs/{run_id}/graph",
        get_graph,
        methods=["GET"],
        response_model=RunGraph,
        responses=ERRORS(401, 403, 404, 422),
    )
    return r
