"""The web process's Starlette app: /healthz (open), and /, /status.json, /metrics behind STATUS_TOKEN.

The token goes in ``Authorization: Bearer <token>`` or ``?token=<token>`` (what
a browser bookmark can carry; the page's auto-refresh keeps the query string).
Without STATUS_TOKEN the protected routes answer 403 and say how to enable
them; a missing or wrong token gets 401. Responses are never cached and the
page sends no Referer, so a token in the URL does not travel further.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

import msgspec
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from connector.settings import Secret, Settings
from connector.status.collect import collect
from connector.status.report import StatusReport
from connector.web.metrics import CONTENT_TYPE, render_metrics
from connector.web.page import render_message, render_page

__all__ = ["create_app", "web_redis_client"]

log = logging.getLogger(__name__)

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
}
_DISABLED = "The status page is disabled: STATUS_TOKEN is not set. Set it to enable /, /status.json and /metrics."
_UNAUTHORIZED = "A valid status token is required: send Authorization: Bearer <token> or add ?token=<token>."
_REDIS_TIMEOUT_S = 5.0

Render = Callable[[int, str], Response]


def web_redis_client(settings: Settings) -> redis.Redis:
    """The settings' Redis client with timeouts, so /healthz answers 503 instead of hanging."""
    from connector import runtime

    client = runtime.redis_client(settings)
    client.connection_pool.connection_kwargs.update(
        socket_timeout=_REDIS_TIMEOUT_S, socket_connect_timeout=_REDIS_TIMEOUT_S
    )
    return client


def _html(status: int, text: str) -> Response:
    title = "Status page disabled" if status == 403 else "Not authorised" if status == 401 else "Unavailable"
    return HTMLResponse(render_message(title, text), status_code=status, headers=_HEADERS)


def _json(status: int, text: str) -> Response:
    return JSONResponse({"error": text}, status_code=status, headers=_HEADERS)


def _text(status: int, text: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status, headers=_HEADERS)


def _supplied_token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query_params.get("token") or None


def _refusal(request: Request, token: Secret | None, render: Render) -> Response | None:
    """403 when no token is configured, 401 for a missing or wrong one, None when allowed."""
    if not token:
        return render(403, _DISABLED)
    supplied = _supplied_token(request)
    if supplied is None or not hmac.compare_digest(supplied.encode(), token.reveal().encode()):
        response = render(401, _UNAUTHORIZED)
        response.headers["WWW-Authenticate"] = 'Bearer realm="connector status"'
        return response
    return None


def create_app(settings: Settings, client: redis.Redis | None = None) -> Starlette:
    """The app for these settings; ``client`` defaults to ``web_redis_client(settings)``."""
    redis_client = client if client is not None else web_redis_client(settings)

    def report(request: Request, render: Render) -> StatusReport | Response:
        refused = _refusal(request, settings.status_token, render)
        if refused is not None:
            return refused
        try:
            return collect(redis_client, settings)
        except redis.RedisError as exc:
            log.warning("status: Redis unavailable (%s)", type(exc).__name__)
            return render(503, f"Redis is unavailable ({type(exc).__name__}).")

    # Plain functions: Starlette runs them in its thread pool, so blocking Redis calls are fine.
    def healthz(request: Request) -> Response:
        try:
            redis_client.ping()
        except redis.RedisError as exc:
            return JSONResponse({"status": "unavailable", "redis": type(exc).__name__}, status_code=503,
                                headers=_HEADERS)
        return JSONResponse({"status": "ok"}, headers=_HEADERS)

    def page(request: Request) -> Response:
        result = report(request, _html)
        if isinstance(result, Response):
            return result
        return HTMLResponse(render_page(result), headers=_HEADERS)

    def status_json(request: Request) -> Response:
        result = report(request, _json)
        if isinstance(result, Response):
            return result
        return Response(msgspec.json.encode(result), media_type="application/json", headers=_HEADERS)

    def metrics(request: Request) -> Response:
        result = report(request, _text)
        if isinstance(result, Response):
            return result
        return Response(render_metrics(result), media_type=CONTENT_TYPE, headers=_HEADERS)

    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/status.json", status_json, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET", "HEAD"]),
    ])
