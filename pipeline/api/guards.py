"""The routes' authorisation: `Authorization: Bearer TOKEN`, read for GET, write for POST and DELETE.

401 (with `WWW-Authenticate: Bearer`) for no token or an unknown one, 403 for a read token where
writing is asked. With no tokens configured (`finsent serve` allows that on loopback only) every
request passes. The bearer scheme is declared once, so /docs offers its Authorize button.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.api.auth import ApiTokens, Scope

bearer = HTTPBearer(auto_error=False, description="a token of FINSENT_API_TOKENS: read for GET, write for POST and DELETE")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _check(request: Request, credentials: HTTPAuthorizationCredentials | None, needed: Scope) -> None:
    tokens = request.app.state.tokens
    assert isinstance(tokens, ApiTokens)
    if not tokens.enabled:
        return
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "send an Authorization: Bearer TOKEN header with a token of FINSENT_API_TOKENS",
                            headers={"WWW-Authenticate": "Bearer"})
    scope = tokens.scope_of(credentials.credentials)
    if scope is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "the bearer token is not one of FINSENT_API_TOKENS: check it",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if not scope.allows(needed):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this endpoint writes: it needs a write:TOKEN of FINSENT_API_TOKENS, "
                                                       "and the token given may only read")


def require_read(request: Request, credentials: Credentials) -> None:
    _check(request, credentials, Scope.READ)


def require_write(request: Request, credentials: Credentials) -> None:
    _check(request, credentials, Scope.WRITE)


READ = [Depends(require_read)]
WRITE = [Depends(require_write)]
