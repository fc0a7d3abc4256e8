"""Stale and replayed pushes never roll production back (issue 13).

A push (git hook or webhook) is only as good as the moment it was sent. When its run
starts, its commit must still be the head of its branch and must not be older than a
commit already deployed from the repo. Otherwise the run is refused, with the reason on
the run. Only an operator (`lintas trigger --sha`, `lintas retry`) may deploy an older
commit, and the run records that it did.

Blocking (git): runs beside the pipeline resolution, in a thread.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from lintas.engine.gitrepo import MirrorCache
from lintas.engine.state import Run

# what anyone who can push or replay a webhook sends, and Lintas's own run for a branch head
# whose push was superseded by an older one (engine.runner.Engine._run_head): the head may move on
CHECKED_SOURCES = frozenset({"hook", "webhook", "reconcile"})
OPERATOR_SOURCES = frozenset({"manual", "retry"})


@dataclass(frozen=True)
class Freshness:
    refused: str | None = None  # the reason the run is refused
    state: Literal["superseded", "failed"] = "failed"
    head: str | None = None  # the branch's head, when the run's commit is no longer it
    note: str | None = None  # an operator's deliberate older commit, recorded on the run


def check(mirror: MirrorCache, run: Run, deployed: Collection[str]) -> Freshness:
    """Whether ``run``'s commit may run now. ``deployed``: commits deployed from this repo."""
    if run.source not in CHECKED_SOURCES | OPERATOR_SOURCES:
        return Freshness()
    sha, ref = run.sha, run.ref
    head = mirror.head(run.url, ref)
    newer = next((d for d in sorted(deployed) if mirror.is_ancestor(run.url, sha, d)), None)
    if run.source in OPERATOR_SOURCES:
        if head == sha and newer is None:
            return Freshness()
        if head is None:
            what = f"absent from {ref}"
        elif head != sha:
            what = f"not the head of {ref} (head: {head[:12]})"
        else:
            what = f"older than {(newer or '')[:12]}, already deployed"
        return Freshness(
            note=f"operator {'retry' if run.source == 'retry' else 'trigger'} by {run.author or '?'} "
            f"of {sha[:12]}, which is {what}"
        )
    if head is None:
        return Freshness(refused=f"stale push: branch {ref} no longer exists", state="superseded")
    if head != sha:
        return Freshness(
            refused=f"stale push: {sha[:12]} is no longer the head of {ref} (head: {head[:12]}); "
            "only `lintas trigger --sha` by an operator may deploy an older commit",
            state="superseded",
            head=head,
        )
    if newer is not None:
        return Freshness(
            refused=f"stale push: {sha[:12]} is older than {newer[:12]}, already deployed from {run.repo}; "
            "only `lintas trigger --sha` by an operator may deploy an older commit",
        )
    return Freshness()
