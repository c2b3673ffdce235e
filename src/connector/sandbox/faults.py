"""Fault injection and request accounting shared by both sandboxes.

An ASGI middleware in front of a sandbox app: it counts every API request
(per route, with the highest number in flight at once), and on demand adds
latency, fails a share of requests with 5xx, lets some hang past any sane
client timeout, caps parallel calls, rate-limits with 429 + Retry-After, or
answers everything with a maintenance 503. Paths under ``/_sandbox/`` (the
control API) are never faulted or counted. The log keeps each request's
``skip`` query parameter as sent, so a test can tell how a client pages.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec

__all__ = ["ErrorBody", "FaultInjector", "Faults", "RequestRecord", "asked_skip"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# (status, reason) -> (body, extra headers); each sandbox answers in its own dialect.
ErrorBody = Callable[[int, str], tuple[bytes, dict[str, str]]]


class Faults(msgspec.Struct, kw_only=True):
    """What to inject; every field may be changed at run time through the control API."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    timeout_rate: float = 0.0
    timeout_s: float = 120.0
    rate_limit_rate: float = 0.0
    rate_per_s: float | None = None
    retry_after_s: int = 1
    max_parallel: int | None = None
    maintenance: bool = False
    maintenance_retry_after_s: int = 60
    # Sent verbatim as the Retry-After of 429 and 503 answers instead of the seconds above,
    # so a client's handling of odd values ("inf", "1e400", "nan", "-3", a date) can be tried.
    retry_after_text: str | None = None
    seed: int | None = None


class RequestRecord(msgspec.Struct, array_like=True):
    """One API request as the sandbox saw it."""

    at: float
    method: str
    route: str
    status: int
    skip: int | None = None  # the ``skip`` query parameter, when one was sent as a number


def asked_skip(query: bytes) -> int | None:
    """The ``skip`` parameter of a query string (matched case-insensitively), if it is a number."""
    if b"skip" not in query.lower():
        return None
    for key, value in parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True):
        if key.lower() == "skip":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


class FaultInjector:
    """The middleware; ``route_of`` names a request's route for the counters."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        error_body: ErrorBody,
        route_of: Callable[[str, str], str],
        log_size: int = 200_000,
    ) -> None:
        self.app = app
        self.error_body = error_body
        self.route_of = route_of
        self.faults = Faults()
        self._random = random.Random()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._max_in_flight = 0
        self._counts: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._log: deque[RequestRecord] = deque(maxlen=log_size)
        self._window_start = 0.0
        self._window_count = 0

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self._random = random.Random(faults.seed)

    def reset_stats(self) -> None:
        with self._lock:
            self._counts.clear()
            self._statuses.clear()
            self._log.clear()
            self._max_in_flight = self._in_flight

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self._counts.values()),
                "routes": dict(self._counts),
                "statuses": dict(self._statuses),
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
            }

    def log(self, since: float = 0.0) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self._log if r.at >= since]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        route = self.route_of(scope["method"], scope["path"])
        status_seen = 0

        async def counting_send(message: Message) -> None:
            nonlocal status_seen
            if message["type"] == "http.response.start":
                status_seen = int(message["status"])
            await send(message)

        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            in_flight = self._in_flight
        try:
            rejection = self._decide(in_flight)
            faults = self.faults
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            if rejection == "timeout":
                await asyncio.sleep(faults.timeout_s)
                rejection = "error"
            if rejection is None:
                await self.app(scope, receive, counting_send)
            else:
                await self._reject(rejection, counting_send)
        finally:
            skip = asked_skip(scope.get("query_string", b""))
            with self._lock:
                self._in_flight -= 1
                self._counts[route] += 1
                self._statuses[str(status_seen)] += 1
                self._log.append(RequestRecord(time.time(), scope["method"], route, status_seen, skip))

    def _decide(self, in_flight: int) -> str | None:
        faults = self.faults
        if faults.maintenance:
            return "maintenance"
        if faults.max_parallel is not None and in_flight > faults.max_parallel:
            return "busy"
        if faults.rate_per_s is not None:
            now = time.monotonic()
            with self._lock:
                if now - self._window_start >= 1.0:
                    self._window_start, self._window_count = now, 0
                self._window_count += 1
                if self._window_count > faults.rate_per_s:
                    return "rate"
        draw = self._random.random()
        if draw < faults.rate_limit_rate:
            return "rate"
        draw -= faults.rate_limit_rate
        if draw < faults.error_rate:
            return "error"
        draw -= faults.error_rate
        if draw < faults.timeout_rate:
            return "timeout"
        return None

    async def _reject(self, kind: str, send: Send) -> None:
        faults = self.faults
        status, reason = {
            "maintenance": (503, "maintenance"),
            "busy": (500, "too many parallel calls"),
            "rate": (429, "rate limited"),
            "error": (faults.error_status, "injected server error"),
        }[kind]
        body, headers = self.error_body(status, reason)
        if status == 429:
            headers = {**headers, "retry-after": str(faults.retry_after_s)}
        if status == 503:
            headers = {**headers, "retry-after": str(faults.maintenance_retry_after_s)}
        if status in (429, 503) and faults.retry_after_text is not None:
            headers = {**headers, "retry-after": faults.retry_after_text}
        raw_headers = [(b"content-type", b"application/json; charset=utf-8")]
        raw_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
        raw_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
