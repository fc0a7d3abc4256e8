"""A decision as the stage reports it: diagnostics that point at files, a compact run summary,
and the full report document kept with the run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lintas.engine import subjects as S
from lintas.engine.contracts import PolicySummary
from lintas.engine.diagnostics import Diagnostic
from lintas.workers.model import InfraModel
from lintas.workers.model.loader import FABRIC, INV_DEFAULTS, INV_GROUPS, INV_HOSTS
from lintas.workers.policy.engine import Decision, Violation

MAX_SUMMARY_ITEMS = 20
_MODEL_KINDS = {"device", "vrf", "network", "host", "flavor", "instance", "link"}
_INVENTORY = {"hosts": ("inventory-host", INV_HOSTS), "groups": ("inventory-group", INV_GROUPS)}


def report_doc_name(run_id: str) -> str:
    """Artifact document name of a run's policy report."""
    return S.policy_report_doc(run_id)


def diagnostic(v: Violation, model: InfraModel | None, package_files: Mapping[str, str]) -> Diagnostic:
    """Where to look: the model object the violation names, else the policy that produced it."""
    message = f"{v.message} [{v.policy}]"
    kind, name = v.object_kind, v.object_name or ""
    if kind == "file":
        return Diagnostic(file=name, line=v.line, message=message)
    if kind == "fabric":
        return Diagnostic(file=FABRIC, message=message)
    if model is not None and kind in _MODEL_KINDS and (origin := model.origin(kind, name)) is not None:
        return origin.diagnostic(message)
    if model is not None and kind == "inventory":
        head, _, rest = name.partition(".")
        if head == "defaults":
            return Diagnostic(file=INV_DEFAULTS, path=rest, message=message)
        if head in _INVENTORY:
            origin_kind, file = _INVENTORY[head]
            obj, _, sub = rest.partition(".")
            origin = model.origin(origin_kind, obj)
            if origin is not None:
                return origin.diagnostic(message, *[p for p in sub.split(".") if p])
            return Diagnostic(file=file, path=rest, message=message)
    return Diagnostic(file=package_files.get(v.policy, "policies"), message=message)


def summary(
    decision: Decision,
    *,
    backend: str,
    modules: int,
    repo_modules: int,
    report: str | None,
    input_sha256: str,
    meta: Mapping[str, Any],
    duration_ms: float,
) -> dict[str, Any]:
    """The compact summary kept on the run (the full decision is in the report document)."""
    items = [
        {"decision": kind, **v.as_json()}
        for kind in ("deny", "require_approval", "require_twin", "warn")
        for v in getattr(decision, kind)
    ]
    return PolicySummary(
        backend=backend,
        modules=modules,
        repo_modules=repo_modules,
        deny=len(decision.deny),
        warn=len(decision.warn),
        require_approval=len(decision.require_approval),
        require_twin=len(decision.require_twin),
        twin_reasons=reasons(decision.require_twin)[:MAX_SUMMARY_ITEMS],
        violations=items[:MAX_SUMMARY_ITEMS],
        truncated=len(items) > MAX_SUMMARY_ITEMS,
        report=report,
        input_sha256=input_sha256,
        evaluated_at=meta.get("evaluated_at"),
        labels=list(meta.get("labels") or []),
        duration_ms=round(duration_ms, 1),
    ).dump()


def reasons(items: tuple[Violation, ...]) -> list[str]:
    """Approval reasons / run warnings: the engine de-duplicates them by text."""
    return [f"{v.message} [{v.policy}]" for v in items]
