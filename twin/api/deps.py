"""FastAPI dependencies: the served state and the caller's principal (bearer token and role)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from twin.api.auth import Principal, Role, TokenStore
from twin.api.errors import ApiError
from twin.api.state import ApiState

__all__ = ["Operator", "State", "Viewer", "state"]

_bearer = HTTPBearer(auto_error=False, description="a viewer's or an operator's token (twin api --help)")


def state(request: Request) -> ApiState:
    s: ApiState = request.app.state.twin_api
    return s


def _principal(request: Request, creds: HTTPAuthorizationCredentials | None, role: Role) -> Principal:
    store: TokenStore = request.app.state.tokens
    token = creds.credentials if creds is not None and creds.scheme.lower() == "bearer" else None
    if token is None and request.url.path.endswith("/events"):
        token = request.query_params.get("access_token")  # EventSource cannot send headers
    if not token:
        raise ApiError(401, "no bearer token: send Authorization: Bearer <token>", "Authorization",
                       headers={"WWW-Authenticate": "Bearer"})
    who = store.lookup(token)
    if who is None:
        raise ApiError(401, "the bearer token is not known", "Authorization",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if not who.may(role):
        raise ApiError(403, f"{who.name} is a {who.role}; this needs the {role} role", "Authorization")
    request.state.principal = who  # the access log names who called (never the token)
    return who


def viewer(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    return _principal(request, creds, "viewer")


def operator(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    return _principal(request, creds, "operator")


State = Annotated[ApiState, Depends(state)]
Viewer = Annotated[Principal, Depends(viewer)]
Operator = Annotated[Principal, Depends(operator)]
