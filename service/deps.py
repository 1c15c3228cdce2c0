"""Dependencies of the routes; tests override them (app.dependency_overrides)."""

from __future__ import annotations

import secrets

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from air3d.service.state import ServiceState

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="required when AIR3D_API_KEY is set"
)


def get_state(request: Request) -> ServiceState:
    state = getattr(request.app.state, "service", None)
    if state is None or not state.ready:
        raise HTTPException(503, "the model is not loaded yet", headers={"Retry-After": "5"})
    return state


def require_api_key(request: Request, key: str | None = Depends(api_key_header)) -> None:
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    if key is None or not secrets.compare_digest(key.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong API key (header X-API-Key)")
