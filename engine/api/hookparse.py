"""Webhook payloads, parsed leniently (extra fields allowed) but validated where used.

Pure functions, no I/O: signature checks and the fields Lintas takes from a push.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Provider = Literal["github", "gitlab", "gitea"]
SHA = r"^[0-9a-f]{40}$"


class HookError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Person(_Lenient):
    name: str = ""
    email: str = ""


class _Commit(_Lenient):
    id: str = ""
    message: str = ""
    author: _Person = Field(default_factory=_Person)


class _Repo(_Lenient):
    full_name: str = Field(min_length=1, max_length=300)


class GithubPush(_Lenient):
    """GitHub and Gitea push payloads (Gitea mirrors GitHub's shape)."""

    ref: str = Field(min_length=1, max_length=250)
    before: str = Field(pattern=SHA)
    after: str = Field(pattern=SHA)
    repository: _Repo
    deleted: bool = False
    head_commit: _Commit | None = None
    commits: list[_Commit] = Field(default_factory=list)


class _Project(_Lenient):
    path_with_namespace: str = Field(min_length=1, max_length=300)


class GitlabPush(_Lenient):
    object_kind: str
    ref: str = Field(min_length=1, max_length=250)
    before: str = Field(pattern=SHA)
    after: str = Field(pattern=SHA)
    project: _Project
    user_name: str = ""
    commits: list[_Commit] = Field(default_factory=list)


@dataclass(frozen=True)
class Push:
    """What Lintas takes from a webhook push. ``repo_id`` is matched against configuration."""

    repo_id: str
    ref: str
    before: str | None
    sha: str
    author: str
    message: str
    deleted: bool


ZERO = "0" * 40


def hmac_sha256_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def github_signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(("sha256=" + hmac_sha256_hex(secret, body)).encode(), header.strip().encode())


def gitea_signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    return hmac.compare_digest(hmac_sha256_hex(secret, body).encode(), header.strip().lower().encode())


def gitlab_token_ok(secret: bytes, header: str | None) -> bool:
    if not header:
        return False
    return hmac.compare_digest(secret, header.encode())


def _head(commits: list[_Commit], head: _Commit | None, sha: str) -> _Commit | None:
    if head is not None:
        return head
    for c in commits:
        if c.id == sha:
            return c
    return commits[-1] if commits else None


def _author(c: _Commit | None, fallback: str = "") -> str:
    if c is None:
        return fallback
    return f"{c.author.name} <{c.author.email}>" if c.author.email else (c.author.name or fallback)


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])


def parse_push(provider: Provider, body: bytes) -> Push:
    try:
        if provider == "gitlab":
            gl = GitlabPush.model_validate_json(body)
            if gl.object_kind != "push":
                raise HookError(400, f"unsupported object_kind {gl.object_kind!r}: only push events start runs")
            head = _head(gl.commits, None, gl.after)
            return Push(
                gl.project.path_with_namespace,
                gl.ref,
                None if gl.before == ZERO else gl.before,
                gl.after,
                _author(head, gl.user_name),
                (head.message if head else "").strip()[:2000],
                gl.after == ZERO,
            )
        gh = GithubPush.model_validate_json(body)
    except ValidationError as exc:
        bad_json = next((e for e in exc.errors(include_url=False) if e["type"] == "json_invalid"), None)
        if bad_json is not None:  # a client error on the body itself: 400, with the parser's reason
            raise HookError(400, f"malformed JSON body: {bad_json['msg'].removeprefix('Invalid JSON: ')}") from None
        raise HookError(422, f"not a valid {provider} push payload: {_errors(exc)}") from None
    head = _head(gh.commits, gh.head_commit, gh.after)
    return Push(
        gh.repository.full_name,
        gh.ref,
        None if gh.before == ZERO else gh.before,
        gh.after,
        _author(head),
        (head.message if head else "").strip()[:2000],
        gh.deleted or gh.after == ZERO,
    )
