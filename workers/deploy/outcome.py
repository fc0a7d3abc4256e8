"""A per-target result of a fan-out (:class:`~workers.deploy.fleet.Fleet`,
:class:`~workers.deploy.hostfleet.HostFleet`): the value, or the error as data.

The error keeps its type: :class:`TargetError` names the exception's class and its
disposition as :func:`engine.disposition.classify` decides it (``retry`` or ``finish``), so a
stage reading 40 per-device results still knows whether a retry can help; its text is masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from lintas.engine.disposition import classify
from lintas.engine.errors import PermanentError, RetryableError, StageError

T = TypeVar("T")


class TargetError(BaseModel):
    """A per-target failure as data: its type and disposition survive the fan-out, its text is masked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str  # the exception's class name: "FrrConnectionError", "PermanentError", ...
    message: str  # masked, bounded
    disposition: Literal["retry", "finish"]  # engine.disposition.classify of the exception
    delay_s: float = 0.0

    @property
    def retryable(self) -> bool:
        return self.disposition == "retry"

    @classmethod
    def of(cls, exc: BaseException, message: str) -> TargetError:
        d = classify(exc, delivery=1, max_deliver=2, default_delay_s=1.0)
        return cls(
            type=type(exc).__name__,
            message=message,
            disposition="retry" if d.action == "retry" else "finish",
            delay_s=d.delay_s,
        )


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    value: T | None
    error: str | None  # the masked message (``failure.message`` when there is one)
    failure: TargetError | None = None
    exc: BaseException | None = None  # the exception itself, in process only (never stored: not masked)

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, exc: BaseException, message: str) -> Outcome[T]:
        return cls(None, message, TargetError.of(exc, message), exc)


def stage_error(failures: Mapping[str, TargetError], what: str) -> StageError:
    """One error for a fan-out's failed targets: retryable (after the longest delay) only when every
    failure is, so one permanent failure is never retried away."""
    detail = "; ".join(f"{n}: {f.type}: {f.message}" for n, f in sorted(failures.items()))
    message = f"{what} failed on {', '.join(sorted(failures))}: {detail}"
    if failures and all(f.retryable for f in failures.values()):
        return RetryableError(message, delay_s=max(f.delay_s for f in failures.values()))
    return PermanentError(message)
