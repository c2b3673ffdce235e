"""AFAS error answers: the HTTP 500 body of Profit, maintenance 503, and the fault bodies."""

from __future__ import annotations

import uuid

import msgspec

__all__ = [
    "NOT_FOUND",
    "NOT_SUPPORTED",
    "UNEXPECTED",
    "AfasError",
    "AfasErrorBody",
    "MaintenanceBody",
    "error_json",
    "fault_error",
]

# errorNumber values seen on real environments (reference §4.7).
NOT_FOUND = -2147220469
NOT_SUPPORTED = -2147180996
UNEXPECTED = -2147180999

MAINTENANCE_MESSAGE = (
    "Service temporarily unavailable due to scheduled maintenance. Please check afasstatus.nl for details."
)


class AfasErrorBody(msgspec.Struct):
    """Profit's functional error, always with HTTP 500."""

    externalMessage: str
    errorNumber: int
    profitLogReference: str


class MaintenanceError(msgspec.Struct):
    code: str
    message: str


class MaintenanceBody(msgspec.Struct):
    """The 503 body during maintenance."""

    error: MaintenanceError
    retry_after: int


class AfasError(Exception):
    """A request Profit refuses with HTTP 500 and an ``AfasErrorBody``."""

    def __init__(self, message: str, number: int = NOT_FOUND) -> None:
        super().__init__(message)
        self.message = message
        self.number = number


def error_json(message: str, number: int) -> bytes:
    ref = uuid.uuid4().hex.upper()
    return msgspec.json.encode(AfasErrorBody(message, number, ref))


def fault_error(status: int, reason: str, retry_after_s: int) -> tuple[bytes, dict[str, str]]:
    """The body FaultInjector sends for an injected fault, in Profit's dialect."""
    headers = {"cache-control": "no-store, no-cache"}
    if status == 503:
        payload = MaintenanceBody(MaintenanceError("503", MAINTENANCE_MESSAGE), retry_after_s)
        return msgspec.json.encode(payload), headers
    if reason == "too many parallel calls":
        message = (
            "Too many parallel calls: at most 8 calls may run at the same time for this environment. Try again later."
        )
    elif status == 500:
        message = "An unexpected error has occurred."
    else:
        message = reason
    return error_json(message, UNEXPECTED), headers
