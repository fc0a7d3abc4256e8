"""Errors of the policy engines. Every one of them fails the stage: the gate fails closed."""

from __future__ import annotations

from lintas.engine.errors import InputError, LintasError


class PolicyError(LintasError):
    """A decision could not be made. The stage fails with :attr:`reason`; it never passes."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PolicyUnavailableError(PolicyError):
    """The policy engine (an OPA server) could not be reached."""


class PolicyTimeoutError(PolicyError):
    """Evaluation did not finish in time (the evaluating process was killed)."""


class PolicyEvaluationError(PolicyError):
    """Evaluation raised an error (a built-in type error, a conflict, a malformed answer)."""

    def __init__(
        self, reason: str, *, file: str | None = None, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(reason)
        self.file = file
        self.line = line
        self.column = column


class PolicySyntaxError(InputError):
    """A policy module that does not parse (or is not allowed): file, line and column."""
