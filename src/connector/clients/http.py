"""The one place where httpx failures become the connector's error taxonomy.

Clients send through ``send``; transport failures come back as
``RetriableError`` (or ``FatalError`` when retrying cannot help), and
``status_error`` maps the statuses both APIs share. Each client classifies its
own dialect (AFAS 500 bodies, Spotler ``errorType``) before falling back here.
Messages carry the call, ids and status, redacted (``connector.redaction``).
"""

from __future__ import annotations

import logging
import math
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
from connector.redaction import redact

__all__ = ["MAX_RETRY_AFTER_S", "clamp_retry_after", "retry_after_seconds", "send", "status_error"]

_log = logging.getLogger(__name__)

_RETRIABLE_STATUSES = {500, 502, 503, 504}
# The longest wait a server can impose: the retry policy caps a re-enqueue delay at 7 days too.
MAX_RETRY_AFTER_S = 7 * 86_400.0


def clamp_retry_after(seconds: float | None) -> float | None:
    """A wait the server asked for, made safe to schedule.

    None and NaN mean no usable value: absent (None), so the caller's own backoff
    applies. A negative wait is 0 (retry now). Anything above ``MAX_RETRY_AFTER_S``
    (7 days, the broker's cap on a delay), ``inf`` included, is that cap. The result
    is finite, so multiplying it into milliseconds never overflows.
    """
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(0.0, float(seconds)), MAX_RETRY_AFTER_S)


def retry_after_seconds(value: str | float | None) -> float | None:
    """Seconds to wait from a Retry-After value (delta seconds or an HTTP date), clamped.

    ``inf``, ``1e400``, ``nan``, negative and far-future values never raise: see
    ``clamp_retry_after``. Text that is neither a number nor a date is absent (None).
    """
    if value is None:
        return None
    if isinstance(value, int | float):
        return clamp_retry_after(float(value))
    text = value.strip()
    if not text:
        return None
    try:
        return clamp_retry_after(float(text))
    except (ValueError, OverflowError):
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return clamp_retry_after((when - datetime.now(UTC)).total_seconds())
    except OverflowError:
        return MAX_RETRY_AFTER_S


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
