"""napalm driver ``frr``: Linux + FRR switches (SONiC/Cumulus style) over SSH.

See :mod:`workers.drivers.frr.driver` for the API, :mod:`workers.drivers.frr.candidate`
for the candidate format and :mod:`workers.drivers.frr.revert` for the device-side
checkpoint and commit-confirm timer.
"""

from __future__ import annotations

from lintas.workers.drivers.frr.candidate import FRR_CONF, LINUX_JSON, Candidate, env_lookup
from lintas.workers.drivers.frr.driver import FrrDriver
from lintas.workers.drivers.frr.errors import (
    FrrAuthError,
    FrrCandidateError,
    FrrCommandError,
    FrrCommitConfirmError,
    FrrCommitError,
    FrrConnectionError,
    FrrHostKeyError,
    FrrMergeError,
)

__all__ = [
    "FRR_CONF",
    "LINUX_JSON",
    "Candidate",
    "FrrAuthError",
    "FrrCandidateError",
    "FrrCommandError",
    "FrrCommitConfirmError",
    "FrrCommitError",
    "FrrConnectionError",
    "FrrDriver",
    "FrrHostKeyError",
    "FrrMergeError",
    "env_lookup",
]
