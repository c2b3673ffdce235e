"""The web process's Starlette app: /healthz (open), and /, /status.json, /metrics, /trace behind STATUS_TOKEN.

The token is accepted as ``Authorization: Bearer <token>`` (Prometheus, curl)
or, for a browser, once through the sign-in form (``POST /signin``), which
sets a cookie (see ``connector.web.auth``). A ``?token=`` URL answers a 303 to
the same URL without it, cookie set, so no page that refreshes itself ever
carries the token. Without STATUS_TOKEN the protected routes answer 403 and
say how to enable them; a missing or wrong token gets 401 (the page: the
sign-in form). Responses are never cached and send no Referer.

/healthz is the web process's liveness and answers "ok", nothing more, without
touching Redis: a platform that restarts it on a failed check would gain
nothing from restarting it while Redis is down. During a Redis outage the
protected routes answer 503 "Redis unavailable" (with Retry-After); one line
is logged when Redis stops answering and one when it is back, not one per
request.

``/trace?contact=ID`` (the form on the page) shows one contact's story as
``connector trace`` does (``connector.web.lookup``, ``connector.web.trace_page``),
``/trace.json?contact=ID`` the same as ``connector trace --json``; an id that is
empty, too long or not printable is a 400 that says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import msgspec
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from connector.settings import Secret, Settings
from connector.status.collect import collect
from connector.status.report import StatusReport
from connector.status.trace import Trace, as_json
from connector.web import auth
from connector.web.lookup import BadContactId, check_contact_id, lookup
from connector.web.metrics import CONTENT_TYPE, render_metrics
from connector.web.page import render_message, render_page, render_signin
from connector.web.trace_page import render_lookup, render_trace

__all__ = ["create_app", "web_redis_client"]

log = logging.getLogger(__name__)

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
}
_DISABLED = ("The status page is disabled: STATUS_TOKEN is not set. "
             "Set it to enable /, /status.json, /trace and /metrics.")
_UNAUTHORIZED = "A valid status token is required: send Authorization: Bearer <token> (or sign in at /)."
_WRONG = "That is not the status token."
_TOKEN_AS_ID = "That is the status token, not a contact id."  # noqa: S105 (a message)
_REDIS_TIMEOUT_S = 5.0
_RETRY_AFTER_S = 5  # the page's own refresh interval

Render = Callable[[int, str], Response]
_T = TypeVar("_T")


def web_redis_client(settings: Settings) -> redis.Redis:
    """The settings' Redis client with shorter timeouts: a request answers within seconds, never hangs."""
    from connector import runtime

    client = runtime.redis_client(settings)
    client.connection_pool.connection_kwargs.update(
        socket_timeout=_REDIS_TIMEOUT_S, socket_connect_timeout=_REDIS_TIMEOUT_S
    )
    return client


class _RedisState:
    """Logs one line when Redis stops answering the web process and one when it is back."""

    def __init__(self) -> None:
        self._since: float | None = None
        self._lock = threading.Lock()

    def failed(self, exc: Exception) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        log.warning("web: Redis unavailable (%s); answering 503 until it is back", type(exc).__name__)

    def answered(self) -> None:
        with self._lock:
            if self._since is None:
                return
            gone, self._since = time.monotonic() - self._since, None
        log.info("web: Redis is back after %.1fs", gone)


def _html(status: int, text: str) -> Response:
    if status == 401:  # a browser: the sign-in form, never anything that echoes what was sent
        return HTMLResponse(render_signin(None), status_code=401, headers=_HEADERS)
    title = "Status page disabled" if status == 403 else "Unavailable"
    return HTMLResponse(render_message(title, text), status_code=status, headers=_HEADERS)


def _json(status: int, text: str) -> Response:
    return JSONResponse({"error": text}, status_code=status, headers=_HEADERS)


def _text(status: int, text: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status, headers=_HEADERS)


def _see_other(location: str) -> Response:
    return RedirectResponse(location, status_code=303, headers=_HEADERS)


def _refusal(request: Request, token: Secret | None, render: Render) -> Response | None:
    """403 when no token is configured, 401 for a missing or wrong one, a 303 for ?token=, None when allowed."""
    if not token:
        return render(403, _DISABLED)
    supplied = request.query_params.get("token")
    if supplied is not None and auth.token_matches(token, supplied):
        return auth.remember(_see_other(auth.clean_url(request)), request, token)
    if supplied is None and auth.authorised(request, token):
        return None
    response = render(401, _UNAUTHORIZED)
    response.headers["WWW-Authenticate"] = 'Bearer realm="connector status"'
    return response


def create_app(settings: Settings, client: redis.Redis | None = None) -> Starlette:
    """The app for these settings; ``client`` defaults to ``web_redis_client(settings)``."""
    redis_client = client if client is not None else web_redis_client(settings)
    state = _RedisState()

    def from_redis(render: Render, work: Callable[[], _T]) -> _T | Response:
        """``work()``, or a 503 while Redis does not answer."""
        try:
            result = work()
        except redis.RedisError as exc:
            state.failed(exc)
            response = render(503, f"Redis unavailable ({type(exc).__name__}): the status shows again "
                                   "once Redis answers.")
            response.headers["Retry-After"] = str(_RETRY_AFTER_S)
            return response
        state.answered()
        return result

    def report(request: Request, render: Render) -> StatusReport | Response:
        refused = _refusal(request, settings.status_token, render)
        if refused is not None:
            return refused
        return from_redis(render, lambda: collect(redis_client, settings))

    def contact_of(request: Request) -> str:
        """The asked id; ``BadContactId`` also for the token itself, pasted in the wrong field: never echoed."""
        contact_id = check_contact_id(request.query_params.get("contact"))
        if settings.status_token and auth.token_matches(settings.status_token, contact_id):
            raise BadContactId(_TOKEN_AS_ID)
        return contact_id

    def traced(contact_id: str, render: Render) -> Trace | Response:
        return from_redis(render, lambda: lookup(settings, redis_client, contact_id))

    def healthz(request: Request) -> Response:
        return PlainTextResponse("ok", headers=_HEADERS)

    async def signin(request: Request) -> Response:
        token = settings.status_token
        if not token:
            return _html(403, _DISABLED)
        try:
            supplied = await auth.form_token(request)
        except auth.FormTooLarge:
            return _text(413, f"A sign-in form is at most {auth.MAX_FORM_BYTES} bytes.")
        if supplied is None or not auth.token_matches(token, supplied):
            return HTMLResponse(render_signin(_WRONG), status_code=401, headers=_HEADERS)
        return auth.remember(_see_other("/"), request, token)

    def signout(request: Request) -> Response:
        return auth.forget(_see_other("/"), request)

    # Plain functions: Starlette runs them in its thread pool, so blocking Redis calls are fine.
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

    def trace_page(request: Request) -> Response:
        refused = _refusal(request, settings.status_token, _html)
        if refused is not None:
            return refused
        if "contact" not in request.query_params:
            return HTMLResponse(render_lookup(None), headers=_HEADERS)
        try:
            contact_id = contact_of(request)
        except BadContactId as exc:
            return HTMLResponse(render_lookup(str(exc)), status_code=400, headers=_HEADERS)
        result = traced(contact_id, _html)
        if isinstance(result, Response):
            return result
        return HTMLResponse(render_trace(result), headers=_HEADERS)

    def trace_json(request: Request) -> Response:
        refused = _refusal(request, settings.status_token, _json)
        if refused is not None:
            return refused
        try:
            contact_id = contact_of(request)
        except BadContactId as exc:
            return _json(400, str(exc))
        result = traced(contact_id, _json)
        if isinstance(result, Response):
            return result
        return Response(as_json(result), media_type="application/json", headers=_HEADERS)

    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/status.json", status_json, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET", "HEAD"]),
        Route("/trace", trace_page, methods=["GET", "HEAD"]),
        Route("/trace.json", trace_json, methods=["GET", "HEAD"]),
    ])
