"""The allowlist of known false positives: ``.lintas/secscan-allowlist.yaml`` in the infra repo.

.. code-block:: yaml

    version: 1
    allow:
      - path: docs/examples/**           # repo-relative glob (required)
        rule: aws-access-key-id          # a secret rule or a bandit test id (default: any)
        line: 12                         # only this line (default: any)
        fingerprint: 3f2a9c0d1e4b5a67    # only this finding (from the SARIF report)
        reason: AWS's documented example key, not a real one   # required
        expires: 2027-01-31              # ignored from this date on (optional)

The file lives in the repo so that a false positive is fixed in the same review as the code;
protect it with CODEOWNERS. An allowlisted finding is still reported, as suppressed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lintas.engine.errors import InputError
from lintas.engine.repofs import RepoFS, glob_match
from lintas.engine.yamlsafe import pydantic_diagnostics
from lintas.workers.secscan.findings import Finding


class AllowEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, max_length=500)
    rule: str | None = Field(None, min_length=1, max_length=100)
    line: int | None = Field(None, ge=1)
    fingerprint: str | None = Field(None, pattern=r"^[0-9a-f]{16}$")
    reason: str = Field(min_length=3, max_length=500)
    expires: date | None = None

    def matches(self, f: Finding, today: date) -> bool:
        return (
            (self.expires is None or today < self.expires)
            and glob_match(self.path, f.file)
            and (self.rule is None or self.rule.lower() == f.rule.lower())
            and (self.line is None or self.line == f.line)
            and (self.fingerprint is None or self.fingerprint == f.fingerprint)
        )


class Allowlist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(1, ge=1, le=1)
    allow: list[AllowEntry] = []

    def apply(self, findings: list[Finding], today: date | None = None) -> list[Finding]:
        day = today or datetime.now(UTC).date()
        out = []
        for f in findings:
            entry = next((e for e in self.allow if e.matches(f, day)), None)
            out.append(f.suppress(entry.reason) if entry is not None else f)
        return out


def load_allowlist(fs: RepoFS, rel: str) -> Allowlist:
    """The allowlist at ``rel`` (empty when the file does not exist). Errors name file and line."""
    if not fs.exists(rel):
        return Allowlist()
    doc = fs.load_yaml(rel)
    if doc.data is None:
        return Allowlist()
    try:
        return Allowlist.model_validate(doc.data)
    except ValidationError as exc:
        raise InputError(pydantic_diagnostics(exc, doc), f"{rel} is not a valid allowlist") from None
