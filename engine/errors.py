"""One exception tree for Lintas. Each branch carries its disposition.

Worker code raises these; :mod:`engine.worker.disposition` is the one place that
maps them onto JetStream ``ack`` / ``nak(delay)`` / ``term``.
"""

from __future__ import annotations

from collections.abc import Sequence

from lintas.engine.diagnostics import MAX_DIAGNOSTICS, Diagnostic, capped, counted, render_all


class LintasError(Exception):
    """Root of every error Lintas raises on purpose."""


class ConfigError(LintasError):
    """Bad settings or environment (missing binary, bad URL, ...)."""


class NotStartedError(LintasError):
    """A long-lived component was used before ``start()`` / ``async with``."""


class InputError(LintasError):
    """Bad user input (a repo file, a pipeline, a webhook). Never retried.

    Carries every diagnostic found, so a user sees all problems at once, up to
    :data:`~engine.diagnostics.MAX_DIAGNOSTICS` (then one entry counting the rest): a
    hostile repo cannot make an error as large as it likes. ``total`` counts them all.
    """

    def __init__(
        self, diagnostics: Sequence[Diagnostic], summary: str | None = None, *, total: int | None = None
    ) -> None:
        self.total = max(total or 0, counted(diagnostics))
        self.diagnostics = capped(diagnostics, self.total, MAX_DIAGNOSTICS)
        self.summary = summary or f"{self.total} problem(s)"
        super().__init__(f"{self.summary}\n{render_all(self.diagnostics)}")


class YamlError(InputError):
    """A YAML file that could not be parsed safely."""


class PipelineError(InputError):
    """A pipeline definition that is not valid."""


class ModelError(InputError):
    """An infrastructure model that is not valid."""


class RepoAccessError(InputError):
    """A repo path that escapes the repo root, is a hostile symlink, or is too large."""


class StageError(LintasError):
    """Raised inside a stage. Subclasses say whether a retry can help."""

    retryable: bool = True
    delay_s: float = 1.0

    def __init__(self, message: str, *, delay_s: float | None = None) -> None:
        super().__init__(message)
        if delay_s is not None:
            self.delay_s = delay_s


class RetryableError(StageError):
    """Transient trouble (device busy, network blip): nak with delay."""

    retryable = True


class PermanentError(StageError):
    """Retrying cannot help: terminate the job and fail the stage."""

    retryable = False


class BusError(LintasError):
    """NATS / JetStream trouble."""


class ConflictError(LintasError):
    """A compare-and-set lost a race; re-read and decide again."""


class LockHeldError(LintasError):
    """A lease-protected lock is held by someone else."""
