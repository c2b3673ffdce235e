"""The one error taxonomy, named after what the caller should do next.

Everything the connector raises on purpose derives from ``ConnectorError``.
Clients translate HTTP and transport failures into these classes at their
boundary, so nothing above them imports httpx exceptions. Messages and
details are redacted on the way in (``connector.redaction``): an error may be
logged, stored in a dead letter or shown anywhere.
"""

from __future__ import annotations

from connector.redaction import redact

__all__ = [
    "AuthError",
    "ConfigError",
    "ConnectorError",
    "FatalError",
    "RateLimited",
    "RecordRejected",
    "RetriableError",
    "SkippableError",
]


class ConnectorError(Exception):
    """Root of every error the connector raises deliberately."""

    def __init__(self, message: str, *, status: int | None = None, detail: str | None = None):
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = redact(detail) if detail is not None else None

    def __str__(self) -> str:
        return self.message


class RetriableError(ConnectorError):
    """Try again later: 5xx, timeouts, maintenance, a locked record."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        detail: str | None = None,
    ):
        super().__init__(message, status=status, detail=detail)
        self.retry_after = retry_after


class RateLimited(RetriableError):
    """Too many requests: wait ``retry_after`` seconds; does not burn the retry budget."""


class FatalError(ConnectorError):
    """Retrying cannot help: validation failure, 4xx, bad configuration."""


class AuthError(FatalError):
    """Credentials were refused (AFAS token, Spotler key/secret)."""


class ConfigError(FatalError):
    """Settings or mapping are missing or inconsistent."""


class RecordRejected(FatalError):
    """The remote system refused one record; the rest of the batch goes on."""

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        field: str | None = None,
        code: str | None = None,
        status: int | None = None,
        detail: str | None = None,
    ):
        super().__init__(message, status=status, detail=detail)
        self.key = key
        self.field = field
        self.code = code


class SkippableError(ConnectorError):
    """Nothing to do for this record (for example it vanished); log and move on."""
