"""Rollout order: which devices change together (pure).

Spines change one at a time: each carries half of every leaf's uplinks. Leaves follow
in waves: a canary wave (``canary`` leaves, default 1), then batches of ``batch_size``
(default: all the rest in one wave, changed at most ``parallelism`` at a time). Every wave is health-gated by the deploy stage and the
rollout stops at the first wave that fails. Hosts (hypervisors) come after every
switch wave, so a hypervisor never changes in the same wave as its top-of-rack leaf.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

WaveKind = Literal["spine", "canary", "leaves", "hosts", "all"]


class Wave(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    kind: WaveKind
    devices: list[str]


class Strategy(BaseModel):
    """The deploy stage's ``with:`` options (validated: a typo fails the stage)."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["waves", "all_at_once"] = "waves"
    canary: int | None = Field(None, ge=0)
    batch_size: int | None = Field(None, ge=0)
    parallelism: int | None = Field(None, ge=1)
    revert_in: int | None = Field(None, ge=10, description="seconds before an unconfirmed commit reverts")
    health_timeout: float | None = Field(None, gt=0)
    allow_deletions: bool | None = Field(None, description="hosts: undefine domains removed from the repo")


def plan_waves(
    targets: Iterable[str], roles: Mapping[str, str], *, strategy: str, canary: int, batch_size: int
) -> list[Wave]:
    """``roles``: target -> "spine" | "leaf" | "host". Unknown roles go with the leaves."""
    names = sorted(set(targets))
    if not names:
        return []
    spines = [n for n in names if roles.get(n) == "spine"]
    hosts = [n for n in names if roles.get(n) == "host"]
    if strategy == "all_at_once":  # still never a host in the wave of its leaf
        switches = [n for n in names if n not in hosts]
        groups_all: list[tuple[WaveKind, list[str]]] = [("all", switches)] if switches else []
        groups_all += [("hosts", hosts)] if hosts else []
        return [Wave(index=i, kind=k, devices=d) for i, (k, d) in enumerate(groups_all)]
    leaves = [n for n in names if n not in spines and n not in hosts]
    groups: list[tuple[WaveKind, list[str]]] = [("spine", [s]) for s in spines]
    rest = leaves
    if canary > 0 and len(leaves) > canary:
        groups.append(("canary", leaves[:canary]))
        rest = leaves[canary:]
    size = batch_size if batch_size > 0 else max(len(rest), 1)
    groups += [("leaves", rest[i : i + size]) for i in range(0, len(rest), size)]
    size_h = batch_size if batch_size > 0 else max(len(hosts), 1)
    groups += [("hosts", hosts[i : i + size_h]) for i in range(0, len(hosts), size_h)]
    return [Wave(index=i, kind=k, devices=d) for i, (k, d) in enumerate(groups)]


def restore_order(waves: Iterable[Iterable[str]], targets: Iterable[str]) -> list[list[str]]:
    """How rollback restores ``targets``: the rollout's waves in reverse (the leaves before the
    spines they were deployed after, each spine on its own as it was changed), all of one wave at
    once; a target no wave holds (a record without its waves) comes last, with the others of its kind."""
    todo = set(targets)
    out: list[list[str]] = []
    for wave in reversed([list(w) for w in waves]):
        group = sorted(n for n in wave if n in todo)
        todo -= set(group)
        if group:
            out.append(group)
    if todo:
        out.append(sorted(todo))
    return out
