"""Render indexes and per-target plans (like `terraform plan`): what would change where.

A render index maps every target of one commit to its artifacts' content ids. A plan
compares an index with a baseline (the last deployed state, or another commit's index)
and holds a unified diff per changed artifact.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["new", "changed", "unchanged", "removed"]
MAX_DIFF_LINES = 2000


class RenderIndex(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str
    sha: str
    targets: dict[str, dict[str, str]]  # target -> artifact name -> content id
    kinds: dict[str, Literal["device", "host"]] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict)  # target -> input fingerprint (workers.render.inputs)


class ArtifactDiff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    before: str | None
    after: str | None
    added: int
    removed: int
    diff: str
    truncated: bool = False


class TargetPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str
    kind: Literal["device", "host"] | None = None
    status: Status
    artifacts: dict[str, str] = Field(default_factory=dict)
    diffs: list[ArtifactDiff] = Field(default_factory=list)


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str
    sha: str
    against: str  # "deployed", "commit <sha>", or "nothing (first deploy)"
    targets: dict[str, TargetPlan]

    def by_status(self, status: Status) -> list[str]:
        return sorted(t for t, p in self.targets.items() if p.status == status)

    def summary(self) -> dict[str, object]:
        return {
            "against": self.against,
            "new": self.by_status("new"),
            "changed": self.by_status("changed"),
            "removed": self.by_status("removed"),
            "unchanged": len(self.by_status("unchanged")),
        }


def unified(name: str, old: str, new: str, target: str) -> ArtifactDiff:
    lines = list(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{target}/{name} (before)",
            tofile=f"{target}/{name} (after)",
            n=3,
        )
    )
    added = sum(1 for ln in lines if ln.startswith("+") and not ln.startswith("+++"))
    removed = sum(1 for ln in lines if ln.startswith("-") and not ln.startswith("---"))
    truncated = len(lines) > MAX_DIFF_LINES
    text = "".join(lines[:MAX_DIFF_LINES])
    return ArtifactDiff(
        name=name, before=None, after=None, added=added, removed=removed, diff=text, truncated=truncated
    )


Fetch = Callable[[str], Awaitable[bytes | None]]


async def make_plan(
    index: RenderIndex,
    baseline: Mapping[str, Mapping[str, str]],
    *,
    against: str,
    fetch: Fetch,
    texts: Mapping[str, Mapping[str, str]] | None = None,
    drifted: Mapping[str, Sequence[str]] | None = None,
) -> Plan:
    """Compare ``index`` with ``baseline`` (target -> artifact -> content id).

    ``texts`` holds artifacts rendered in this process (avoids re-reading them); anything
    else is fetched by content id. Only changed artifacts are read at all."""
    plans: dict[str, TargetPlan] = {}
    for target in sorted(set(index.targets) | set(baseline)):
        now = index.targets.get(target)
        before = baseline.get(target)
        kind = index.kinds.get(target)
        if now is None:
            plans[target] = TargetPlan(target=target, kind=kind, status="removed", artifacts={})
            continue
        if before is None:
            status: Status = "new"
        elif dict(before) == now and target in (drifted or {}):
            # the device no longer runs what was deployed (drift remediation): re-apply it
            lines = list((drifted or {})[target])
            text = "".join(f"{ln}\n" for ln in lines)
            plans[target] = TargetPlan(
                target=target,
                kind=kind,
                status="changed",
                artifacts=now,
                diffs=[
                    ArtifactDiff(name="(drift on the target)", before=None, after=None, added=0, removed=0, diff=text)
                ],
            )
            continue
        elif dict(before) == now:
            plans[target] = TargetPlan(target=target, kind=kind, status="unchanged", artifacts=now)
            continue
        else:
            status = "changed"
        diffs = []
        for name in sorted(set(now) | set(before or {})):
            old_id, new_id = (before or {}).get(name), now.get(name)
            if old_id == new_id:
                continue
            old = await _text(old_id, fetch) if old_id else ""
            new = (texts or {}).get(target, {}).get(name)
            if new is None:
                new = await _text(new_id, fetch) if new_id else ""
            d = unified(name, old, new, target)
            diffs.append(d.model_copy(update={"before": old_id, "after": new_id}))
        plans[target] = TargetPlan(target=target, kind=kind, status=status, artifacts=now, diffs=diffs)
    return Plan(repo=index.repo, sha=index.sha, against=against, targets=plans)


async def _text(blob_id: str, fetch: Fetch) -> str:
    data = await fetch(blob_id)
    if data is None:
        return f"<artifact {blob_id} is no longer stored>\n"
    return data.decode("utf-8", errors="replace")
