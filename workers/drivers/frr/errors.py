"""Errors of the FRR driver: napalm's exception types, carrying Lintas' disposition.

Each class is both the napalm exception a napalm/nornir caller expects
(``ConnectionException``, ``ReplaceConfigException``, ``CommitError``, ...) and a
:class:`engine.errors.StageError` saying whether a retry can help, so the deploy stage
maps it without looking at names. Messages never carry a secret value: device output
is masked before it is put into an exception.
"""

from __future__ import annotations

from napalm.base import exceptions as nx

from lintas.engine.errors import PermanentError, RetryableError


class FrrConnectionError(RetryableError, nx.ConnectionException):  # type: ignore[misc]
    """SSH could not be opened or was lost (timeout, refused, reset): may succeed later."""


class FrrHostKeyError(PermanentError, nx.ConnectionException):  # type: ignore[misc]
    """The device's host key is unknown or differs from known_hosts: never accepted, never retried."""


class FrrAuthError(PermanentError, nx.ConnectAuthError):  # type: ignore[misc]
    """The device refused our key (or password)."""


class FrrCommandError(RetryableError, nx.CommandErrorException):  # type: ignore[misc]
    """A command on the device failed or timed out."""


class FrrCandidateError(PermanentError, nx.ReplaceConfigException):  # type: ignore[misc]
    """The candidate bundle is malformed, inconsistent, or its secrets cannot be resolved."""


class FrrMergeError(PermanentError, nx.MergeConfigException):  # type: ignore[misc]
    """A merge candidate that cannot be loaded."""


class FrrCommitError(PermanentError, nx.CommitError):  # type: ignore[misc]
    """Commit refused or failed (the device was restored to its checkpoint when possible)."""


class FrrCommitConfirmError(PermanentError, nx.CommitConfirmException):  # type: ignore[misc]
    """confirm_commit without a pending commit, e.g. because the device-side timer already reverted it."""
