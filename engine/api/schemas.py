"""Request and response shapes of the API (the OpenAPI contract). Fields are only added."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lintas.engine.events import LogLine


class ErrorBody(BaseModel):
    detail: Any = Field(description="a message, or a list of validation errors")


_DESCRIPTIONS = {
    400: "bad request",
    401: "missing or invalid credentials",
    403: "role too low",
    404: "not found",
    409: "not possible in the run's current state",
    413: "payload too large",
    422: "invalid input",
    503: "NATS unavailable",
}


def ERRORS(*codes: int) -> dict[int | str, dict[str, Any]]:  # noqa: N802 - reads like a constant
    return {c: {"model": ErrorBody, "description": _DESCRIPTIONS[c]} for c in codes}


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(min_length=1, max_length=200, description="a name from the server-side repo registry")
    ref: str | None = Field(None, min_length=1, max_length=250, description="branch or full ref; default: the repo's")
    sha: str | None = Field(None, pattern=r"^[0-9a-f]{40}$", description="default: the ref's head")


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field("", max_length=2000)


class Accepted(BaseModel):
    run_id: str
    event_id: str
    action: str
    actor: str


class LogEntry(BaseModel):
    seq: int = Field(description="JetStream stream sequence; use as Last-Event-ID to resume")
    line: LogLine


class TargetView(BaseModel):
    target: str
    kind: Literal["device", "host"]
    repo: str
    commit: str
    run_id: str = Field(description="the run that last deployed this target")
    deployed_at: datetime
    artifacts: dict[str, str] = Field(description="artifact name -> content id")
    drift: str | None = Field(
        None,
        description="in_sync | drifted | behind | unreachable | unknown, from the latest drift scan "
        "(null: never scanned)",
    )
    drift_checked_at: datetime | None = Field(None, description="when the latest drift scan ran")
    differences: list[str] = Field(default_factory=list, description="what differs from the last deployed config")


class GraphNode(BaseModel):
    name: str
    kind: str
    state: str = Field(description="the stage's state (pending until the engine creates it)")
    needs: list[str] = Field(description="stages this one runs after (the DAG's edges)")
    on_failure: list[str] = Field(description="for a failure handler: the stages whose failure triggers it")
    approval: Literal["required", "on_request", "none"]
    awaiting_approval: bool
    depth: int = Field(description="column in a left-to-right layout: 1 + the deepest of its needs")


class RunGraph(BaseModel):
    run_id: str
    pipeline: str | None
    stages: list[GraphNode] = Field(description="in pipeline order")
