"""The one place where httpx failures become the connector's error taxonomy.

Clients send through ``send``; transport failures come back as
``RetriableError`` (or ``FatalError`` when retrying cannot help), and
``status_error`` maps the statuses both APIs share. Each client classifies its
own dialect (AFAS 500 bodies, Spotler ``errorType``) before falling back here.
Messages carry the call, ids and status; e-mail addresses are masked.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from connector.errors import (
    AuthError,
    ConfigError,
    ConnectorError,
    FatalError,
    RateLimited,
    RetriableError,
)

__all__ = ["redact", "retry_after_seconds", "send", "status_error"]

_log = logging.getLogger(__name__)

_EMAIL = re.compile(r"[^\s@'\"<>(),;:/?&=]+@[^\s@'\"<>(),;:/?&=]+")
_RETRIABLE_STATUSES = {500, 502, 503, 504}


def redact(text: str) -> str:
    """Mask anything that looks like an e-mail address."""
    return _EMAIL.sub("<email>", text)


def retry_after_seconds(value: str | float | None) -> float | None:
    """Seconds to wait from a Retry-After value (delta seconds or an HTTP date)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return max(0.0, float(value))
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def send(client: httpx.Client, request: httpx.Request, *, what: str) -> httpx.Response:
    """Send ``request``; transport failures become connector errors naming ``what``."""
    started = time.monotonic()
    try:
        response = client.send(request)
    except httpx.TimeoutException as exc:
        raise RetriableError(f"{what}: timed out ({type(exc).__name__})") from None
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
        raise ConfigError(
            f"{what}: cannot send ({type(exc).__name__}: {redact(str(exc))})"
        ) from None
    except httpx.TooManyRedirects:
        raise FatalError(f"{what}: too many redirects") from None
    except httpx.RequestError as exc:
        raise RetriableError(
            f"{what}: connection failed ({type(exc).__name__}: {redact(str(exc))})"
        ) from None
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{what}: invalid URL ({redact(str(exc))})") from None
    _log.debug(
        "%s -> %s in %.0f ms", what, response.status_code, (time.monotonic() - started) * 1000
    )
    return response


def status_error(response: httpx.Response, what: str, detail: str | None = None) -> ConnectorError:
    """The error for an unsuccessful response, by status alone."""
    status = response.status_code
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    message = f"{what}: HTTP {status}"
    if detail:
        message += f" ({redact(detail)})"
    if status in (401, 403):
        return AuthError(message + " - credentials refused", status=status, detail=detail)
    if status == 429:
        return RateLimited(message, retry_after=retry_after, status=status, detail=detail)
    if status in _RETRIABLE_STATUSES or status >= 500:
        return RetriableError(message, retry_after=retry_after, status=status, detail=detail)
    return FatalError(message, status=status, detail=detail)
