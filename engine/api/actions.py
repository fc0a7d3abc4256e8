"""Mutating endpoints (operator or admin): manual trigger and approve/reject/cancel/retry.

Each publishes an ingress event; the engine decides. The API refuses up front (409) what
the engine would only ignore, so an operator gets a clear answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException

from lintas.engine.api.auth import Operator
from lintas.engine.api.context import Ctx
from lintas.engine.api.runs import full_ref
from lintas.engine.api.schemas import ERRORS, Accepted, ActionRequest, TriggerRequest
from lintas.engine.client import control, publish_control, publish_push
from lintas.engine.events import Action, PushEvent, manual_event_id
from lintas.engine.state import RunState
from lintas.engine.store import RunStore


def _head_of(url: str, ref: str) -> str | None:
    import git

    out = str(git.Git().ls_remote(url, ref)).split()
    return out[0] if out else None


async def trigger(ctx: Ctx, who: Operator, req: TriggerRequest) -> Accepted:
    """A manual run of a registered repo: a new run even for an already-built commit."""
    entry = ctx.registry.get(req.repo)
    if entry is None:
        raise HTTPException(404, f"unknown repo {req.repo!r}: not in the server's repo registry")
    ref = full_ref(req.ref) if req.ref else entry.default_ref
    sha = req.sha
    if sha is None:
        try:
            sha = await asyncio.to_thread(_head_of, entry.url, ref)
        except Exception:
            raise HTTPException(422, f"cannot resolve {ref} in repo {req.repo!r}") from None
        if sha is None:
            raise HTTPException(422, f"{ref} not found in repo {req.repo!r}")
    try:
        ev = PushEvent(
            event_id=manual_event_id(),
            occurred_at=datetime.now(UTC),
            repo=req.repo,
            url=entry.url,
            ref=ref,
            sha=sha,
            author=who.name,
            message="manual trigger",
            source="manual",
        )
    except ValueError:
        raise HTTPException(422, "invalid ref") from None
    await publish_push(ctx.topo.js, ev)
    return Accepted(run_id=ev.run_id, event_id=ev.event_id, action="trigger", actor=who.name)


def _refusal(action: Action, state: RunState) -> str | None:
    if action == "retry":
        return None if state.terminal else f"run is {state.value}: only a finished run can be retried"
    if state.terminal:
        return f"run is already {state.value}"
    if action in ("approve", "reject") and state is not RunState.waiting_approval:
        return f"run is {state.value}, not waiting for approval"
    return None


def _action(action: Action) -> Callable[..., Awaitable[Accepted]]:
    async def act(
        ctx: Ctx, who: Operator, run_id: str, req: Annotated[ActionRequest | None, Body()] = None
    ) -> Accepted:
        got = await RunStore(ctx.topo.runs).get(RunStore.key(run_id))
        if got is None:
            raise HTTPException(404, f"no run {run_id[:100]}")
        why = _refusal(action, got[0].state)
        if why is not None:
            raise HTTPException(409, f"cannot {action}: {why}")
        ev = control(run_id, action, who.name, (req.comment if req else ""))
        await publish_control(ctx.topo.js, ev)
        return Accepted(run_id=run_id, event_id=ev.event_id, action=action, actor=who.name)

    act.__name__ = f"{action}_run"
    act.__doc__ = f"{action.capitalize()} a run (operator). Body: optional {{comment}}; the actor is the token's name."
    return act


def router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["actions"])
    r.add_api_route(
        "/runs",
        trigger,
        methods=["POST"],
        status_code=202,
        response_model=Accepted,
        responses=ERRORS(401, 403, 404, 422),
    )
    for action in ("approve", "reject", "cancel", "retry"):
        r.add_api_route(
            f"/runs/{{run_id}}/{action}",
            _action(action),
            methods=["POST"],
            status_code=202,
            response_model=Accepted,
            responses=ERRORS(401, 403, 404, 409, 422),
        )
    return r
