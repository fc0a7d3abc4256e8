"""Stage results that always fit: a result is one NATS message (and one journal entry, and a
part of the run document), so its size is bounded here, before anything is published.

- up to ``result_inline_max_bytes``: published as it is;
- larger (up to ``result_max_bytes``): the full result goes to the object store, and the
  inline one keeps the small summary fields, the first diagnostics and ``result_ref``;
- larger still, or not serialisable: the attempt fails with the reason.
"""

from __future__ import annotations

import json
from typing import Any

from lintas.engine.diagnostics import capped
from lintas.engine.events import JobFinished, StageFailure

INLINE_DIAGNOSTICS = 100  # diagnostics kept inline when the full result is stored aside
SMALL_FIELD = 1024  # summary fields up to this size (JSON) stay inline
MAX_TEXTS = 100  # warnings / approval reasons kept inline


def failed_copy(finished: JobFinished, reason: str) -> JobFinished:
    """The same job, failed with ``reason`` and nothing else (small by construction)."""
    return finished.model_copy(
        update={
            "outcome": "failed",
            "failure": StageFailure(message=reason[:2000]),
            "summary": {},
            "approval_reasons": [],
            "warnings": [],
        }
    )


def serialised(finished: JobFinished) -> tuple[JobFinished, bytes]:
    """The result and its JSON; a result that cannot be serialised becomes a failure saying so."""
    try:
        return finished, finished.model_dump_json().encode()
    except (ValueError, TypeError) as exc:  # pydantic_core.PydanticSerializationError is a ValueError
        small = failed_copy(finished, f"the stage's result cannot be serialised: {str(exc)[:300]}")
        return small, small.model_dump_json().encode()


def _small(value: Any) -> bool:
    try:
        return len(json.dumps(value, default=str)) <= SMALL_FIELD
    except (TypeError, ValueError):
        return False


def inline_part(finished: JobFinished, ref: str | None, size: int) -> JobFinished:
    """What travels inline when the full result (``size`` bytes) is stored as ``ref`` (None: not stored)."""
    summary = {k: v for k, v in finished.summary.items() if _small(v)}
    summary.update(result_bytes=size, result_omitted=sorted(k for k in finished.summary if k not in summary))
    if ref is not None:
        summary["result_ref"] = ref
    failure = finished.failure
    if failure is not None:
        failure = failure.model_copy(
            update={
                "message": failure.message[:4000],
                "diagnostics": capped(failure.diagnostics, None, INLINE_DIAGNOSTICS),
            }
        )
    return finished.model_copy(
        update={
            "summary": summary,
            "failure": failure,
            "warnings": [w[:1000] for w in finished.warnings[:MAX_TEXTS]],
            "approval_reasons": [r[:1000] for r in finished.approval_reasons[:MAX_TEXTS]],
        }
    )
