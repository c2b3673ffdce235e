"""The Spotler Mail+ sandbox as one ASGI app: fault injection around a Starlette router.

The API lives under ``/integrationservice-1.1.0/`` and ``/integrationservice/``
(identical behaviour), the control API under ``/_sandbox/``. Unknown routes
answer 404 and other methods (there is no DELETE) 405, both in Spotler's
``{errorType, message}`` dialect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Router

from connector.sandbox.faults import FaultInjector, Receive, Scope, Send
from connector.sandbox.guard import SandboxGuard
from connector.sandbox.spotler.api import ContactApi, error_response
from connector.sandbox.spotler.control import ControlApi
from connector.sandbox.spotler.state import SandboxSettings, SpotlerState
from connector.sandbox.spotler.wire import ApiError, Property

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_SECRET",
    "PREFIXES",
    "SpotlerApp",
    "create_app",
    "error_body",
    "route_of",
]

DEFAULT_KEY = "sandbox-consumer-key"
DEFAULT_SECRET = "sandbox-consumer-secret"  # noqa: S105 (a public test credential)
PREFIXES = ("/integrationservice-1.1.0", "/integrationservice")

_FIXED_ROUTES = frozenset({
    "/contact", "/contact/list", "/contact/updates/list", "/contact/bounces/list",
    "/contact/properties/list", "/contact/search",
})
_ID_ACTIONS = frozenset({"anonymize", "inactivate"})


def route_of(method: str, path: str) -> str:
    """A request's route for the counters: ids collapsed, both prefixes as one."""
    for prefix in PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            rest = path[len(prefix):].rstrip("/") or "/"
            break
    else:
        return f"{method} {path}"
    if rest in _FIXED_ROUTES:
        return f"{method} {rest}"
    parts = rest.split("/")
    if len(parts) >= 3 and parts[1] == "contact":
        if len(parts) == 4 and parts[2] in _ID_ACTIONS:
            return f"{method} /contact/{parts[2]}/{{id}}"
        tail = "".join(f"/{p}" for p in parts[3:])
        return f"{method} /contact/{{id}}{tail}"
    return f"{method} {rest}"


def error_body(status: int, reason: str) -> tuple[bytes, dict[str, str]]:
    """Injected failures in Spotler's dialect (429 has no documented errorType)."""
    error_type = "BACKEND_EXCEPTION" if status >= 500 else "INVALID_STATE"
    return msgspec.json.encode({"errorType": error_type, "message": reason}), {}


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return error_response(ApiError(404, "RESOURCE_NOT_FOUND", "Resource not found"))
    if status == 405:
        return error_response(ApiError(405, "INVALID_PARAMS", "Method not allowed"))
    return error_response(ApiError(status, "BACKEND_EXCEPTION", "Request failed"))


class SpotlerApp:
    """The ASGI callable; ``state`` exposes the store, clock, settings and faults."""

    def __init__(self, state: SpotlerState, injector: FaultInjector) -> None:
        self.state = state
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.injector(scope, receive, send)


def create_app(
    key: str = DEFAULT_KEY,
    secret: str = DEFAULT_SECRET,
    *,
    credentials: Mapping[str, str] | None = None,
    catalogue: Iterable[Property] | None = None,
    settings: SandboxSettings | None = None,
    control_token: str | None = None,
) -> SpotlerApp:
    """A fresh sandbox accepting ``key``/``secret`` (plus any further ``credentials``).

    With ``control_token`` the control API requires it as a bearer token.
    """
    keys = {key: secret, **(credentials or {})}
    state = SpotlerState(keys, catalogue=catalogue, settings=settings)
    api_routes = ContactApi(state).routes()
    routes = [
        Mount(prefix, app=Router(routes=api_routes, redirect_slashes=False)) for prefix in PREFIXES
    ]
    routes.append(
        Mount("/_sandbox", app=Router(routes=ControlApi(state).routes(), redirect_slashes=False))
    )
    starlette = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    guarded = SandboxGuard(starlette, error_body=error_body, control_token=control_token)
    injector = FaultInjector(guarded, error_body=error_body, route_of=route_of)
    state.faults = injector
    return SpotlerApp(state, injector)
