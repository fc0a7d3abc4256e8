"""Bearer-token auth with roles viewer < operator < admin.

Tokens are configured as SHA-256 hashes; a presented token is hashed and compared with
every configured hash in constant time (no early exit, so timing does not reveal which
entry matched). Tokens are never logged. 401: no or unknown token; 403: role too low.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lintas.engine.api.settings import Role, TokenEntry
from lintas.engine.settings import Settings

bearer = HTTPBearer(auto_error=False, description="API token; roles viewer < operator < admin")


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


ANONYMOUS = Principal("anonymous", Role.viewer)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def match_token(token: str, entries: list[TokenEntry]) -> TokenEntry | None:
    digest = hash_token(token).encode()
    found: TokenEntry | None = None
    for entry in entries:
        if hmac.compare_digest(digest, entry.sha256.encode()) and found is None:
            found = entry
    return found


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="lintas"'})


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers with at least ``role``.

    Anonymous callers are admitted only for viewer-level reads with anonymous read enabled.
    """

    async def dep(
        request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Principal:
        settings: Settings = request.app.state.lintas.settings
        if creds is None or not creds.credentials:
            if role is Role.viewer and settings.api_anonymous_read:
                return ANONYMOUS
            raise _unauthorized("missing bearer token")
        entry = match_token(creds.credentials, request.app.state.lintas.tokens)
        if entry is None:
            raise _unauthorized("invalid token")
        if entry.level < role:
            raise HTTPException(403, f"role {entry.role} may not do this: {role.name} or higher required")
        return Principal(entry.name, entry.level)

    return dep


Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Operator = Annotated[Principal, Depends(require(Role.operator))]
