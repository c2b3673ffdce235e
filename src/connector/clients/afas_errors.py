"""AFAS's failure dialect turned into the connector's error taxonomy.

An HTTP 500 body (``externalMessage``, ``errorNumber``, ``profitLogReference``,
or the legacy Base64 ``X-PROFIT-ERROR`` header) is read to tell a locked record
or a server timeout (retriable) from a validation failure (the record is
rejected); a 503 honours its ``retry_after``. Texts are redacted: AFAS quotes
the values it refused, e-mail addresses included.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import httpx
import msgspec

from connector.clients.http import retry_after_seconds, status_error
from connector.errors import AuthError, ConnectorError, FatalError, RecordRejected, RetriableError
from connector.redaction import redact
from connector.schemas.afas import AfasErrorBody

__all__ = ["classify", "record_key"]

_RETRIABLE_TEXTS = (
    "locked",
    "vergrendeld",
    "in gebruik",
    "maximale tijdsduur",
    "maximum duration",
    "too many parallel",
    "unexpected error",
    "onverwachte fout",
)
_NOT_AUTHORISED_TEXTS = ("not authorized", "niet geautoriseerd", "not supported for this app")
_RECORD_KEYS = ("CdId", "BcCoOga", "BcCoPer", "BcCo")

_ERROR = msgspec.json.Decoder(AfasErrorBody)


def record_key(fields: Mapping[str, Any]) -> str | None:
    """The ids that name the record an UpdateConnector call writes, e.g. ``BcCo 1000130``."""
    present = [name for name in _RECORD_KEYS if fields.get(name) not in (None, "")]
    parts = [f"{name} {fields[name]}" for name in present]
    return ", ".join(parts) or None


def _error_body(response: httpx.Response) -> AfasErrorBody | None:
    content = response.content.strip()
    if content:
        try:
            return _ERROR.decode(content)
        except msgspec.DecodeError:  # ValidationError is a DecodeError too
            pass
    legacy = response.headers.get("X-PROFIT-ERROR")
    if legacy:
        try:
            return AfasErrorBody(
                externalMessage=base64.b64decode(legacy).decode("utf-8", "replace")
            )
        except (binascii.Error, ValueError):
            pass
    if content:
        return AfasErrorBody(message=content[:500].decode("utf-8", "replace"))
    return None


def _detail(body: AfasErrorBody) -> str:
    refs = [
        f"{name} {value}"
        for name, value in (
            ("errorNumber", body.errorNumber),
            ("profitLogReference", body.profitLogReference),
        )
        if value not in (None, "")
    ]
    text = redact(body.text)
    return f"{text} [{', '.join(refs)}]" if refs else text


def classify(
    response: httpx.Response, what: str, *, writing: bool, key: str | None
) -> ConnectorError:
    """The error a failed AFAS answer stands for; ``key`` names the record of a write."""
    status = response.status_code
    body = _error_body(response)
    text = body.text.lower() if body else ""
    detail = _detail(body) if body else None
    if status == 503:
        # The body's own retry_after first, clamped like the header (1e306 or 1e400 never overflow).
        retry_after = retry_after_seconds(body.retry_after_text) if body else None
        if retry_after is None:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return RetriableError(
            f"{what}: HTTP 503 (AFAS unavailable)",
            retry_after=retry_after,
            status=503,
            detail=detail,
        )
    if status != 500 or body is None:
        return status_error(response, what, detail)
    said = redact(body.text)
    if any(marker in text for marker in _NOT_AUTHORISED_TEXTS):
        return AuthError(f"{what}: HTTP 500 not authorised: {said}", status=500, detail=detail)
    if not text or any(marker in text for marker in _RETRIABLE_TEXTS):
        return RetriableError(f"{what}: HTTP 500: {said}", status=500, detail=detail)
    if writing:
        code = None if body.errorNumber is None else str(body.errorNumber)
        return RecordRejected(
            f"{what}: HTTP 500 rejected: {said}", key=key, code=code, status=500, detail=detail
        )
    return FatalError(f"{what}: HTTP 500: {said}", status=500, detail=detail)
