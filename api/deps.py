"""FastAPI dependencies every router imports: the app state, the serving service, roles.

Module-level so that routers under ``api/routes/`` can use them directly (the FastAPI full-stack
template's ``api/deps.py``). They read what :func:`api.app.create_app` puts on ``app.state``:
``socialrec`` (the :class:`api.app.AppState`), ``settings`` and ``keyring``.

Usage in a router::

    from api.deps import AppStateDep, ServiceDep, require_role
    router = APIRouter(dependencies=[Depends(require_role("admin"))])

Errors: 401 (no or unknown key), 403 (the key's role may not call the route), 503 (nothing
loaded yet) — all rendered as ``application/problem+json`` by :mod:`api.problems`.
"""

# no `from __future__ import annotations`: FastAPI resolves the Annotated aliases at import time

from typing import Annotated, Any, Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.security import KeyRing, bearer_token

bearer = HTTPBearer(auto_error=False, description="API key: `socialrec apikey create --role ROLE`")
AUTH_ERRORS = {401: {"content": {"application/problem+json": {}}}, 403: {"content": {"application/problem+json": {}}}}


def require_role(role: str) -> Callable:
    """A dependency that admits only keys of ``role`` (or ``admin``), when auth is required.

    Returns the role of the key (None when auth is off). Raises 401/403 as above.
    """

    async def check(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str | None:
        # async: a SHA-256 and a compare take microseconds; a sync dependency would cost a thread hop
        ring: KeyRing = request.app.state.keyring
        if not ring.required:
            return None
        token = credentials.credentials if credentials is not None else bearer_token(request.headers.get("authorization"))
        if not token:
            raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"})
        found = ring.role_of(token)
        if found is None:
            raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
        if not ring.allows(found, role):
            raise HTTPException(403, f"this API key's role may not call this route (needs {role!r})")
        return found

    check.__name__ = f"require_{role}"
    return check


async def get_state(request: Request) -> Any:
    """The app's :class:`api.app.AppState` (swapped atomically on promotion)."""
    return request.app.state.socialrec


async def get_settings(request: Request) -> Any:
    """The app's :class:`api.settings.Settings`."""
    return request.app.state.settings


async def get_service(state: Annotated[Any, Depends(get_state)]) -> Any:
    """The serving :class:`recsys.serving.RecommendationService`; 503 until a version is loaded.

    One read: the request keeps this version even if a swap happens while it runs.
    """
    service = state.service
    if service is None:
        raise HTTPException(503, "no model version is loaded yet; run `socialrec train`")
    return service


AppStateDep = Annotated[Any, Depends(get_state)]
SettingsDep = Annotated[Any, Depends(get_settings)]
ServiceDep = Annotated[Any, Depends(get_service)]
