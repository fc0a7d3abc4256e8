"""The one place that decides a job message's fate from what the stage did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lintas.engine.errors import InputError, StageError


@dataclass(frozen=True)
class Disposition:
    action: Literal["finish", "retry", "dead_letter"]
    message: str
    delay_s: float = 0.0


def classify(exc: BaseException, *, delivery: int, max_deliver: int, default_delay_s: float) -> Disposition:
    """Map an exception raised by a stage onto what happens to its job.

    - InputError / PermanentError / timeouts: the attempt failed for good (``finish``).
    - RetryableError and any unexpected exception: ``retry`` with delay, until the last
      delivery, after which the job is ``dead_letter``-ed.
    """
    text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, StageError | InputError) else str(exc)
    if isinstance(exc, InputError):
        return Disposition("finish", exc.summary)
    if isinstance(exc, TimeoutError):
        return Disposition("finish", "timed out")
    if isinstance(exc, StageError) and not exc.retryable:
        return Disposition("finish", text)
    delay = exc.delay_s if isinstance(exc, StageError) else default_delay_s
    if delivery >= max_deliver:
        return Disposition("dead_letter", text)
    return Disposition("retry", text, delay_s=delay * (2 ** (delivery - 1)))
